package openpgp

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"errors"
	"math/big"
)

// digestInfoPrefixes are the DER DigestInfo prefixes of EMSA-PKCS1-v1_5
// (RFC 8017 section 9.2, note 1) for the hashes signatures are made with.
var digestInfoPrefixes = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

var errRSAVerification = errors.New("crypto/rsa: verification error")

// verifyPKCS1v15 checks that sig is the RSA PKCS #1 v1.5 signature of
// digest (hashed with h) under pub, as rsa.VerifyPKCS1v15 does, by the
// method of RFC 8017 section 8.2.2: it computes sig^e mod n and compares
// the whole result, byte for byte, with the one encoding it accepts.
//
// It exists because the server checks every signature its token returns
// (a fault in the token's CRT computation could otherwise leak the key):
// crypto/rsa derives its constant-time Montgomery modulus from the key on
// each call, which for a 4096-bit key costs about three times what this
// public-exponent computation with math/big does. Nothing here is secret.
// Hashes without a prefix above, and keys that are not well formed, go to
// crypto/rsa.
func verifyPKCS1v15(pub *rsa.PublicKey, h crypto.Hash, digest, sig []byte) error {
	prefix, ok := digestInfoPrefixes[h]
	if !ok || pub.N == nil || pub.N.Sign() <= 0 || pub.N.Bit(0) == 0 || pub.E < 3 || pub.E&1 == 0 {
		return rsa.VerifyPKCS1v15(pub, h, digest, sig)
	}
	k := (pub.N.BitLen() + 7) / 8
	tLen := len(prefix) + len(digest)
	if len(digest) != h.Size() || len(sig) != k || k < tLen+11 {
		return errRSAVerification
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return errRSAVerification
	}
	em := s.Exp(s, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, k))
	// EM = 0x00 || 0x01 || PS (0xff, at least 8) || 0x00 || DigestInfo
	want := make([]byte, k)
	want[1] = 1
	ps := want[2 : k-tLen-1]
	for i := range ps {
		ps[i] = 0xff
	}
	copy(want[k-tLen:], prefix)
	copy(want[k-len(digest):], digest)
	if !bytes.Equal(em, want) {
		return errRSAVerification
	}
	return nil
}
