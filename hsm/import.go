// This file holds key import: an existing private key stored in the token
// as a sensitive, non-extractable object.

package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/asn1"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// ImportRequest asks the token to take in an existing private key.
type ImportRequest struct {
	// Key is *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey.
	Key   crypto.Signer
	Label string
	ID    []byte // nil: a random free 2-byte id
}

// ImportKey stores an existing private key in the token as a sensitive,
// non-extractable object, with its public half beside it. The caller
// should drop every copy of the key afterwards; ImportKey zeroes the
// attribute buffers it made. CKA_ALWAYS_SENSITIVE reads false for an
// imported key, which is the truth: it once existed outside the token.
func (t *Token) ImportKey(req ImportRequest) (*Key, error) {
	typ, err := KeyTypeOf(req.Key.Public())
	if err != nil {
		return nil, err
	}
	pubAttrs, privAttrs, err := keyMaterial(req.Key)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, a := range privAttrs {
			switch a.Type {
			case pkcs11.CKA_PRIVATE_EXPONENT, pkcs11.CKA_PRIME_1, pkcs11.CKA_PRIME_2,
				pkcs11.CKA_EXPONENT_1, pkcs11.CKA_EXPONENT_2, pkcs11.CKA_COEFFICIENT, pkcs11.CKA_VALUE:
				clear(a.Value)
			}
		}
	}()
	var key *Key
	err = t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		id, err := t.newID(c, sh, req.Label, req.ID)
		if err != nil {
			return err
		}
		pubT, privT := commonTemplates(typ, id, req.Label)
		pubH, err := c.CreateObject(sh, append(pubT, pubAttrs...))
		if err != nil {
			return fmt.Errorf("storing the public half of %q: %w", req.Label, err)
		}
		if _, err := c.CreateObject(sh, append(privT, privAttrs...)); err != nil {
			c.DestroyObject(sh, pubH)
			return fmt.Errorf("storing the private half of %q: %w", req.Label, err)
		}
		key = &Key{t: t, id: id, label: req.Label, typ: typ, pub: req.Key.Public()}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: importing key: %w", err)
	}
	return key, nil
}

// keyMaterial returns the type-specific attributes of both halves.
func keyMaterial(s crypto.Signer) (pub, priv []*pkcs11.Attribute, err error) {
	switch k := s.(type) {
	case *rsa.PrivateKey:
		if err := k.Validate(); err != nil {
			return nil, nil, fmt.Errorf("hsm: RSA key is invalid: %w", err)
		}
		k.Precompute()
		e := big.NewInt(int64(k.E)).Bytes()
		pub = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, k.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, e),
		}
		priv = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, k.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, e),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE_EXPONENT, k.D.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PRIME_1, k.Primes[0].Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PRIME_2, k.Primes[1].Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_1, k.Precomputed.Dp.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_2, k.Precomputed.Dq.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_COEFFICIENT, k.Precomputed.Qinv.Bytes()),
		}
		if len(k.Primes) != 2 {
			return nil, nil, fmt.Errorf("hsm: multi-prime RSA keys: %w", ErrUnsupported)
		}
	case *ecdsa.PrivateKey:
		typ, err := KeyTypeOf(&k.PublicKey)
		if err != nil {
			return nil, nil, err
		}
		point, err := k.PublicKey.Bytes()
		if err != nil {
			return nil, nil, fmt.Errorf("hsm: ECDSA public key: %w", err)
		}
		octets, _ := asn1.Marshal(point)
		scalar, err := k.Bytes()
		if err != nil {
			return nil, nil, fmt.Errorf("hsm: ECDSA private key: %w", err)
		}
		pub = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, typ.ecParams()),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, octets),
		}
		priv = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, typ.ecParams()),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, scalar),
		}
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, nil, fmt.Errorf("hsm: Ed25519 private key is %d bytes", len(k))
		}
		octets, _ := asn1.Marshal([]byte(k.Public().(ed25519.PublicKey)))
		pub = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, Ed25519.ecParams()),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, octets),
		}
		priv = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, Ed25519.ecParams()),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, append([]byte(nil), k.Seed()...)),
		}
	default:
		return nil, nil, fmt.Errorf("hsm: private key of type %T: %w", s, ErrUnsupported)
	}
	return pub, priv, nil
}
