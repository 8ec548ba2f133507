// Package openpgp makes OpenPGP (RFC 4880) v4 keys, certificates, detached
// signatures, cleartext signed messages and signed messages from a
// crypto.Signer, decrypts messages encrypted to an RSA key with a
// crypto.Decrypter, and imports secret keys exported by gpg. It also holds
// the formats of Sigul's signing operations built on them: git tag
// signatures, container image signatures and OSTree detached commit
// metadata.
//
// The private key never has to leave its crypto.Signer: a Key is the public
// half plus a fixed creation time (which is part of the fingerprint), and
// every signature packet is built here and only the digest is handed to the
// signer. Supported key types are RSA (OpenPGP algorithm 1), ECDSA on P-256
// and P-384 (algorithm 19) and Ed25519 as legacy EdDSA (algorithm 22), which
// is what gpg 2.2 and rpm 4.18 understand.
package openpgp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strings"
	"time"
)

// Errors that callers may test for with errors.Is.
var (
	// ErrUnsupportedAlgorithm reports a key type, curve or size that this
	// package does not handle.
	ErrUnsupportedAlgorithm = errors.New("openpgp: unsupported key algorithm")
	// ErrNotSecretKey reports input that is not an OpenPGP secret key.
	ErrNotSecretKey = errors.New("openpgp: not an OpenPGP secret key")
	// ErrStubKey reports a secret key packet without its secret part (a
	// gpg "gnu-dummy" stub or a key that lives on a smartcard).
	ErrStubKey = errors.New("openpgp: secret key material is not present (gnu-dummy or smartcard stub)")
	// ErrPassphraseRequired reports a protected secret key given without a
	// passphrase.
	ErrPassphraseRequired = errors.New("openpgp: secret key is protected and no passphrase was given")
	// ErrBadPassphrase reports a passphrase that does not decrypt the
	// secret key.
	ErrBadPassphrase = errors.New("openpgp: wrong passphrase for secret key")
)

// OpenPGP public key algorithm numbers (RFC 4880 section 9.1, RFC 6637).
const (
	algoRSA   = 1
	algoECDSA = 19
	algoEdDSA = 22
)

// Curve OIDs, DER contents without tag and length (RFC 6637 section 11 and
// the legacy EdDSA draft for Ed25519, 1.3.6.1.4.1.11591.15.1).
var (
	oidP256    = []byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidP384    = []byte{0x2b, 0x81, 0x04, 0x00, 0x22}
	oidEd25519 = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01}
)

// minRSABits is the smallest RSA modulus NewKey accepts.
const minRSABits = 2048

// Key is an OpenPGP v4 primary key: the public half of a crypto.Signer and
// the creation time that, together with it, fixes the fingerprint. The
// private half stays in the signer.
type Key struct {
	signer  crypto.Signer
	pub     crypto.PublicKey
	algo    byte
	hash    crypto.Hash // default signature hash
	created time.Time
	body    []byte // public key packet body
	fp      [20]byte
}

// NewKey describes signer as an OpenPGP v4 key created at created (kept to
// the second). The signer's public key must be an *rsa.PublicKey of at least
// 2048 bits, an *ecdsa.PublicKey on P-256 or P-384, or an ed25519.PublicKey;
// other types are refused with ErrUnsupportedAlgorithm. A creation time
// before 1970 or after 2106 (not representable in OpenPGP) is refused. The
// same public key and creation time always give the same fingerprint, so
// the creation time must be stored with the key and reused.
func NewKey(signer crypto.Signer, created time.Time) (*Key, error) {
	if signer == nil {
		return nil, errors.New("openpgp: NewKey: nil signer")
	}
	secs := created.Unix()
	if created.IsZero() || secs <= 0 || secs > math.MaxUint32 {
		return nil, fmt.Errorf("openpgp: key creation time %s is outside the OpenPGP range (1970 to 2106)", created.UTC().Format(time.RFC3339))
	}
	k := &Key{signer: signer, pub: signer.Public(), created: time.Unix(secs, 0).UTC()}
	body := []byte{4, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(body[1:], uint32(secs))
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < minRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits (minimum %d)", ErrUnsupportedAlgorithm, n, minRSABits)
		}
		k.algo, k.hash = algoRSA, crypto.SHA256
		body = appendMPI(body, pub.N.Bytes())
		body = appendMPI(body, big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		var oid []byte
		switch pub.Curve {
		case elliptic.P256():
			oid, k.hash = oidP256, crypto.SHA256
		case elliptic.P384():
			oid, k.hash = oidP384, crypto.SHA384
		default:
			return nil, fmt.Errorf("%w: ECDSA curve %s (only P-256 and P-384)", ErrUnsupportedAlgorithm, pub.Curve.Params().Name)
		}
		point, err := pub.Bytes()
		if err != nil {
			return nil, fmt.Errorf("openpgp: invalid ECDSA public key: %w", err)
		}
		k.algo = algoECDSA
		body = append(body, byte(len(oid)))
		body = append(body, oid...)
		body = appendMPI(body, point)
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("openpgp: invalid Ed25519 public key of %d bytes", len(pub))
		}
		k.algo, k.hash = algoEdDSA, crypto.SHA256
		body = append(body, byte(len(oidEd25519)))
		body = append(body, oidEd25519...)
		body = appendMPI(body, append([]byte{0x40}, pub...)) // native point prefix
	default:
		return nil, fmt.Errorf("%w: public key of type %T (want *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey)", ErrUnsupportedAlgorithm, k.pub)
	}
	body[5] = k.algo
	k.body = body
	h := sha1.New()
	h.Write([]byte{0x99, byte(len(body) >> 8), byte(len(body))})
	h.Write(body)
	h.Sum(k.fp[:0])
	return k, nil
}

// Fingerprint returns the 20-byte v4 fingerprint.
func (k *Key) Fingerprint() []byte { return append([]byte(nil), k.fp[:]...) }

// FingerprintHex returns the fingerprint as 40 upper-case hex digits, as gpg
// prints it.
func (k *Key) FingerprintHex() string { return strings.ToUpper(hex.EncodeToString(k.fp[:])) }

// KeyID returns the 64-bit key id, the last 8 bytes of the fingerprint.
func (k *Key) KeyID() uint64 { return binary.BigEndian.Uint64(k.fp[12:]) }

// Created returns the key creation time (UTC, whole seconds).
func (k *Key) Created() time.Time { return k.created }

// Public returns the signer's public key.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Hash returns the hash used by Certificate and SignDetached: SHA-384 for
// ECDSA P-384 keys, SHA-256 otherwise.
func (k *Key) Hash() crypto.Hash { return k.hash }

// appendMPI appends b, a big-endian unsigned integer, as an OpenPGP MPI: a
// two-byte bit count followed by the bytes without leading zeros.
func appendMPI(dst, b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	n := 0
	if len(b) > 0 {
		n = (len(b)-1)*8 + bits.Len8(b[0])
	}
	dst = append(dst, byte(n>>8), byte(n))
	return append(dst, b...)
}

// appendPacket appends a packet with a new-format header (RFC 4880 4.2.2).
func appendPacket(dst []byte, tag byte, body []byte) []byte {
	dst = appendLength(append(dst, 0xc0|tag), len(body))
	return append(dst, body...)
}

// appendLength appends n in the one-, two- or five-byte length encoding
// shared by new-format packet headers and signature subpackets.
func appendLength(dst []byte, n int) []byte {
	switch {
	case n < 192:
		dst = append(dst, byte(n))
	case n < 8384:
		n -= 192
		dst = append(dst, byte(n>>8)+192, byte(n))
	default:
		dst = append(dst, 0xff)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return dst
}
