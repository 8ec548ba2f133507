package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"slices"
	"strings"
)

// KeyType is a kind of key the token can generate, import and sign with.
type KeyType int

// The key types, in the order `key generate --help` lists them.
const (
	RSA2048 KeyType = iota + 1
	RSA3072
	RSA4096
	ECDSAP256
	ECDSAP384
	Ed25519
)

// keyTypes lists every supported key type.
var keyTypes = []KeyType{RSA2048, RSA3072, RSA4096, ECDSAP256, ECDSAP384, Ed25519}

// KeyTypes returns every supported key type (a copy: the list is not
// changeable from outside).
func KeyTypes() []KeyType { return slices.Clone(keyTypes) }

var keyTypeNames = map[KeyType]string{
	RSA2048:   "rsa2048",
	RSA3072:   "rsa3072",
	RSA4096:   "rsa4096",
	ECDSAP256: "ecdsa-p256",
	ECDSAP384: "ecdsa-p384",
	Ed25519:   "ed25519",
}

func (k KeyType) String() string {
	if s, ok := keyTypeNames[k]; ok {
		return s
	}
	return fmt.Sprintf("KeyType(%d)", int(k))
}

// ParseKeyType parses a key type name as String prints it; "rsa-4096",
// "p256" and "nistp256" style spellings are accepted too.
func ParseKeyType(s string) (KeyType, error) {
	n := strings.ToLower(strings.NewReplacer("-", "", "_", "", "nist", "").Replace(s))
	for k, name := range keyTypeNames {
		canon := strings.ReplaceAll(name, "-", "")
		if n == canon || (strings.HasPrefix(canon, "ecdsa") && n == strings.TrimPrefix(canon, "ecdsa")) {
			return k, nil
		}
	}
	var all []string
	for _, k := range keyTypes {
		all = append(all, k.String())
	}
	return 0, fmt.Errorf("hsm: key type %q: %w; choose one of %s", s, ErrUnsupported, strings.Join(all, ", "))
}

// IsRSA reports whether k is an RSA key type.
func (k KeyType) IsRSA() bool { return k == RSA2048 || k == RSA3072 || k == RSA4096 }

func (k KeyType) rsaBits() int {
	switch k {
	case RSA2048:
		return 2048
	case RSA3072:
		return 3072
	case RSA4096:
		return 4096
	}
	return 0
}

func (k KeyType) curve() elliptic.Curve {
	switch k {
	case ECDSAP256:
		return elliptic.P256()
	case ECDSAP384:
		return elliptic.P384()
	}
	return nil
}

// DER-encoded OIDs for CKA_EC_PARAMS.
var (
	oidP256    = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidP384    = []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}
	oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}
)

// ecParams returns a fresh copy: attribute buffers may be zeroed after use.
func (k KeyType) ecParams() []byte {
	switch k {
	case ECDSAP256:
		return bytes.Clone(oidP256)
	case ECDSAP384:
		return bytes.Clone(oidP384)
	case Ed25519:
		return bytes.Clone(oidEd25519)
	}
	return nil
}

// KeyTypeOf returns the key type of a public key, or ErrUnsupported.
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		switch p.N.BitLen() {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		case 4096:
			return RSA4096, nil
		}
		return 0, fmt.Errorf("hsm: RSA key of %d bits: %w (2048, 3072 or 4096)", p.N.BitLen(), ErrUnsupported)
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
		return 0, fmt.Errorf("hsm: ECDSA curve %s: %w (P-256 or P-384)", p.Curve.Params().Name, ErrUnsupported)
	case ed25519.PublicKey:
		return Ed25519, nil
	}
	return 0, fmt.Errorf("hsm: public key of type %T: %w", pub, ErrUnsupported)
}
