package openpgp

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
	"testing"
)

// TestVerifyPKCS1v15 holds verifyPKCS1v15 to rsa.VerifyPKCS1v15: both
// accept the genuine signatures and both refuse every corrupted one, each
// wrong digest, hash and length, a signature that is not below the modulus,
// and a signature made without a DigestInfo.
func TestVerifyPKCS1v15(t *testing.T) {
	for _, bits := range []int{2048, 3072} {
		key, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		pub := &key.PublicKey
		s256 := sha256.Sum256([]byte("signed"))
		s384 := sha512.Sum384([]byte("signed"))
		s512 := sha512.Sum512([]byte("signed"))
		for _, c := range []struct {
			h      crypto.Hash
			digest []byte
		}{{crypto.SHA256, s256[:]}, {crypto.SHA384, s384[:]}, {crypto.SHA512, s512[:]}} {
			sig, err := rsa.SignPKCS1v15(nil, key, c.h, c.digest)
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string, h crypto.Hash, digest, sig []byte, want bool) {
				t.Helper()
				ours := verifyPKCS1v15(pub, h, digest, sig) == nil
				std := rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
				if ours != want || std != want {
					t.Errorf("%d bits, %v, %s: ours accepts %v, crypto/rsa %v, want %v", bits, c.h, what, ours, std, want)
				}
			}
			check("genuine", c.h, c.digest, sig, true)
			for i := range sig {
				bad := append([]byte(nil), sig...)
				bad[i] ^= 1 << (i % 8)
				check("bit flipped", c.h, c.digest, bad, false)
			}
			for i := range c.digest {
				bad := append([]byte(nil), c.digest...)
				bad[i] ^= 0x80
				check("other digest", c.h, bad, sig, false)
			}
			if c.h == crypto.SHA512 {
				check("other hash", crypto.SHA384, s384[:], sig, false)
			} else {
				check("other hash", crypto.SHA512, s512[:], sig, false)
			}
			check("short", c.h, c.digest, sig[1:], false)
			check("long", c.h, c.digest, append([]byte{0}, sig...), false)
			check("digest short", c.h, c.digest[1:], sig, false)
			check("modulus", c.h, c.digest, pub.N.FillBytes(make([]byte, len(sig))), false)
			sPlusN := new(big.Int).Add(new(big.Int).SetBytes(sig), pub.N)
			if sPlusN.BitLen() <= 8*len(sig) {
				check("signature plus modulus", c.h, c.digest, sPlusN.FillBytes(make([]byte, len(sig))), false)
			}
			raw, err := rsa.SignPKCS1v15(nil, key, crypto.Hash(0), c.digest)
			if err != nil {
				t.Fatal(err)
			}
			check("no DigestInfo", c.h, c.digest, raw, false)
		}
	}
}

// BenchmarkVerifyPKCS1v15 compares the check of a 4096-bit signature by
// verifyPKCS1v15 and by crypto/rsa.
func BenchmarkVerifyPKCS1v15(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256([]byte("signed"))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		fn   func(*rsa.PublicKey, crypto.Hash, []byte, []byte) error
	}{{"signet", verifyPKCS1v15}, {"crypto-rsa", rsa.VerifyPKCS1v15}} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				if err := v.fn(&key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
