package rpm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
)

// IMA signature format (the kernel's struct signature_v2_hdr, big-endian),
// as rpmsign stores it: the xattr type byte 0x03 (EVM_IMA_XATTR_DIGSIG),
// version 2, the hash algorithm, a 4-byte key id, the signature length
// (u16) and the signature.
const (
	imaXattrDigsig = 0x03
	imaVersion2    = 2
)

// imaHashes maps rpm's file digest algorithm ids (tag 5011) to hashes and
// the kernel's hash_algo ids (include/uapi/linux/hash_info.h). MD5 (1, the
// default when the tag is absent) and SHA-1 (2) are refused.
var imaHashes = map[uint32]struct {
	hash crypto.Hash
	id   byte
}{
	8:  {crypto.SHA256, 4},
	9:  {crypto.SHA384, 5},
	10: {crypto.SHA512, 6},
	11: {crypto.SHA224, 7},
}

// IMAKeyID returns the key id of an IMA v2 signature made by the private
// half of pub: the last 4 bytes of the SHA-1 of the subjectPublicKey bit
// string of pub's X.509 SubjectPublicKeyInfo (for ECDSA, the uncompressed
// point), which is how evmctl computes it and, for certificates made that
// way, the end of their subject key identifier, which the kernel matches.
func IMAKeyID(pub crypto.PublicKey) ([4]byte, error) {
	var id [4]byte
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return id, fmt.Errorf("rpm: IMA key id: %w", err)
	}
	var spki struct {
		Algorithm asn1.RawValue
		Key       asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &spki); err != nil || len(rest) > 0 {
		return id, errors.New("rpm: IMA key id: cannot parse the encoded public key")
	}
	sum := sha1.Sum(spki.Key.Bytes)
	copy(id[:], sum[len(sum)-4:])
	return id, nil
}

// imaSignatures signs the main header's file digests with signer and
// returns one hex signature per file ("" for files without a digest:
// directories, symbolic links, ghosts) and the longest signature's length
// in bytes (0 if no file has a digest).
func (p *Package) imaSignatures(signer crypto.Signer) ([]string, uint32, error) {
	if err := checkFileSigner(signer); err != nil {
		return nil, 0, err
	}
	pub := signer.Public().(*ecdsa.PublicKey)
	keyID, err := IMAKeyID(pub)
	if err != nil {
		return nil, 0, err
	}
	digests, err := p.main.strs(tagFileDigests)
	if err != nil {
		return nil, 0, err
	}
	if len(digests) == 0 {
		return nil, 0, nil // no files
	}
	files, err := p.main.strs(tagBaseNames)
	if err == nil && files == nil {
		files, err = p.main.strs(tagOldFileNames)
	}
	if err != nil {
		return nil, 0, err
	}
	if len(files) != len(digests) {
		return nil, 0, corruptf("main header lists %d file digests for %d files", len(digests), len(files))
	}
	algo, ok, err := p.main.uint32v(tagFileDigestAlgo)
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		algo = 1 // rpm's default: MD5
	}
	h, ok := imaHashes[algo]
	if !ok {
		name := map[uint32]string{1: "MD5", 2: "SHA-1"}[algo]
		if name == "" {
			name = fmt.Sprintf("algorithm %d", algo)
		}
		return nil, 0, fmt.Errorf("rpm: %s has %s file digests, which are refused for IMA signatures (SHA-224, SHA-256, SHA-384 and SHA-512 are accepted); rebuild it with a stronger %%_binary_filedigest_algorithm", p, name)
	}

	sigs := make([]string, len(digests))
	var maxLen uint32
	for i, d := range digests {
		sum, err := hex.DecodeString(d)
		if err != nil || (len(sum) != h.hash.Size() && d != "") {
			return nil, 0, corruptf("main header holds a malformed %s digest %q for file %q", h.hash, d, files[i])
		}
		if isZero(sum) { // no content to sign; rpm signs none either
			continue
		}
		sig, err := signer.Sign(rand.Reader, sum, h.hash)
		if err != nil {
			return nil, 0, fmt.Errorf("rpm: IMA signing of file %q: %w", files[i], err)
		}
		if !ecdsa.VerifyASN1(pub, sum, sig) {
			return nil, 0, fmt.Errorf("rpm: IMA signer returned a signature for file %q that does not verify", files[i])
		}
		if len(sig) > math.MaxUint16 {
			return nil, 0, fmt.Errorf("rpm: IMA signer returned a %d-byte signature", len(sig))
		}
		b := []byte{imaXattrDigsig, imaVersion2, h.id}
		b = append(b, keyID[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(sig)))
		b = append(b, sig...)
		sigs[i] = hex.EncodeToString(b)
		maxLen = max(maxLen, uint32(len(b)))
	}
	return sigs, maxLen, nil
}

// checkFileSigner refuses IMA signing keys other than ECDSA P-256.
func checkFileSigner(signer crypto.Signer) error {
	if pub, ok := signer.Public().(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		return fmt.Errorf("rpm: IMA file signing key must be ECDSA P-256, not %s", describeKey(signer.Public()))
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func describeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	default:
		return fmt.Sprintf("a %T key", pub)
	}
}
