// This file holds Key, a private key in the token, its custody attributes
// and its cached object handle.

package hsm

import (
	"crypto"
	"encoding/hex"
	"fmt"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// Key is a private key that lives in the token. It implements crypto.Signer
// and is safe for concurrent use; concurrency is bounded by the token's
// session cap.
type Key struct {
	t     *Token
	id    []byte
	label string
	typ   KeyType
	pub   crypto.PublicKey
	h     atomic.Pointer[objectRef] // cached private key handle
}

type objectRef struct {
	h   pkcs11.ObjectHandle
	gen uint64
}

// ID is the key's CKA_ID (a 16-bit object id on a YubiHSM 2).
func (k *Key) ID() []byte { return append([]byte(nil), k.id...) }

// IDHex is the key's CKA_ID in lower-case hex.
func (k *Key) IDHex() string { return hex.EncodeToString(k.id) }

// Label is the key's CKA_LABEL.
func (k *Key) Label() string { return k.label }

// Type is the key's type.
func (k *Key) Type() KeyType { return k.typ }

// Public returns the public key: *rsa.PublicKey, *ecdsa.PublicKey or
// ed25519.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Token is the token holding the key.
func (k *Key) Token() *Token { return k.t }

// KeyAttributes are the custody attributes of a private key as the token
// reports them.
type KeyAttributes struct {
	Sensitive        bool // CKA_SENSITIVE
	Extractable      bool // CKA_EXTRACTABLE
	AlwaysSensitive  bool // CKA_ALWAYS_SENSITIVE: generated in the token
	NeverExtractable bool // CKA_NEVER_EXTRACTABLE
}

// Attributes reads the private key's custody attributes from the token.
func (k *Key) Attributes() (KeyAttributes, error) {
	v, err := k.boolAttributes(pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE)
	if err != nil {
		return KeyAttributes{}, err
	}
	return KeyAttributes{v[0], v[1], v[2], v[3]}, nil
}

// boolAttributes reads boolean attributes of the private key, in order.
func (k *Key) boolAttributes(types ...uint) ([]bool, error) {
	out := make([]bool, len(types))
	err := k.t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		h, err := k.handle(c, sh, gen)
		if err != nil {
			return err
		}
		tmpl := make([]*pkcs11.Attribute, len(types))
		for i, t := range types {
			tmpl[i] = pkcs11.NewAttribute(t, nil)
		}
		attrs, err := c.GetAttributeValue(sh, h, tmpl)
		if err != nil {
			return err
		}
		for i, a := range attrs {
			out[i] = len(a.Value) == 1 && a.Value[0] != 0
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: reading attributes of key %q: %w", k.label, err)
	}
	return out, nil
}

// handle returns the private key's object handle, finding it again when the
// token recovered since it was cached.
func (k *Key) handle(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) (pkcs11.ObjectHandle, error) {
	if ref := k.h.Load(); ref != nil && ref.gen == gen {
		return ref.h, nil
	}
	hs, err := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, k.id),
	}, 2)
	if err != nil {
		return 0, err
	}
	if len(hs) != 1 {
		return 0, fmt.Errorf("hsm: private key with id %s (%q) not found in token: %w", k.IDHex(), k.label, ErrKeyNotFound)
	}
	k.h.Store(&objectRef{h: hs[0], gen: gen})
	return hs[0], nil
}
