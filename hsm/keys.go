package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
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
	var ka KeyAttributes
	err := k.t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		h, err := k.handle(c, sh, gen)
		if err != nil {
			return err
		}
		attrs, err := c.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_SENSITIVE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
		})
		if err != nil {
			return err
		}
		b := func(a *pkcs11.Attribute) bool { return len(a.Value) == 1 && a.Value[0] != 0 }
		ka = KeyAttributes{b(attrs[0]), b(attrs[1]), b(attrs[2]), b(attrs[3])}
		return nil
	})
	if err != nil {
		return ka, fmt.Errorf("hsm: reading attributes of key %q: %w", k.label, err)
	}
	return ka, nil
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

// Sign signs digest with the key in the token, following the crypto.Signer
// contract: for RSA, opts selects PKCS#1 v1.5 (a crypto.Hash; crypto.Hash(0)
// signs digest as is, without a DigestInfo) or PSS (*rsa.PSSOptions); for
// ECDSA the signature is ASN.1 DER; for Ed25519 digest is the whole message
// and opts.HashFunc() must be zero (Ed25519ph and contexts are refused).
// rand is ignored: the token has its own.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		opts = crypto.Hash(0)
	}
	mech, data, err := k.mechanism(digest, opts)
	if err != nil {
		return nil, err
	}
	var sig []byte
	err = k.t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		h, err := k.handle(c, sh, gen)
		if err != nil {
			return err
		}
		if err := c.SignInit(sh, mech, h); err != nil {
			return err
		}
		sig, err = c.Sign(sh, data)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: signing with key %q: %w", k.label, err)
	}
	if k.typ == ECDSAP256 || k.typ == ECDSAP384 {
		return ecdsaDER(sig)
	}
	return sig, nil
}

// mechanism picks the PKCS#11 mechanism and the bytes to give C_Sign.
func (k *Key) mechanism(digest []byte, opts crypto.SignerOpts) ([]*pkcs11.Mechanism, []byte, error) {
	h := opts.HashFunc()
	if h != 0 && len(digest) != h.Size() {
		return nil, nil, fmt.Errorf("hsm: digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	switch {
	case k.typ.IsRSA():
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return pssMechanism(k, h, pss, digest)
		}
		if h == 0 {
			return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, digest, nil
		}
		prefix, ok := digestInfoPrefix[h]
		if !ok {
			return nil, nil, fmt.Errorf("hsm: RSA PKCS#1 v1.5 with %v: %w", h, ErrUnsupported)
		}
		data := append(append(make([]byte, 0, len(prefix)+len(digest)), prefix...), digest...)
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, data, nil
	case k.typ == ECDSAP256 || k.typ == ECDSAP384:
		if h == 0 {
			return nil, nil, errors.New("hsm: ECDSA signs a digest: opts must name its hash")
		}
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, digest, nil
	case k.typ == Ed25519:
		if h != 0 {
			return nil, nil, fmt.Errorf("hsm: Ed25519ph (pre-hashed with %v): %w; pass the whole message with crypto.Hash(0)", h, ErrUnsupported)
		}
		if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
			return nil, nil, fmt.Errorf("hsm: Ed25519 with a context: %w", ErrUnsupported)
		}
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEDDSA, nil)}, digest, nil
	}
	return nil, nil, fmt.Errorf("hsm: key type %v: %w", k.typ, ErrUnsupported)
}

func pssMechanism(k *Key, h crypto.Hash, pss *rsa.PSSOptions, digest []byte) ([]*pkcs11.Mechanism, []byte, error) {
	p, ok := pssHashes[h]
	if !ok {
		return nil, nil, fmt.Errorf("hsm: RSA-PSS with %v: %w", h, ErrUnsupported)
	}
	salt := pss.SaltLength
	switch salt {
	case rsa.PSSSaltLengthEqualsHash:
		salt = h.Size()
	case rsa.PSSSaltLengthAuto:
		salt = (k.pub.(*rsa.PublicKey).N.BitLen()-1+7)/8 - 2 - h.Size()
	}
	if salt < 0 {
		return nil, nil, fmt.Errorf("hsm: RSA-PSS salt length %d is invalid", pss.SaltLength)
	}
	params := pkcs11.NewPSSParams(p.mech, p.mgf, uint(salt))
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, params)}, digest, nil
}

var pssHashes = map[crypto.Hash]struct{ mech, mgf uint }{
	crypto.SHA1:   {pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1},
	crypto.SHA224: {pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224},
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512},
}

// DER of the DigestInfo that precedes the digest in a PKCS#1 v1.5
// signature (RFC 8017, section 9.2, note 1).
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.MD5:    {0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00, 0x04, 0x10},
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// ecdsaDER converts PKCS#11's r||s into the ASN.1 form crypto.Signer
// callers expect.
func ecdsaDER(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, fmt.Errorf("hsm: token returned a %d-byte ECDSA signature", len(raw))
	}
	n := len(raw) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:]),
	})
}

// GenerateRequest asks the token to generate a key pair.
type GenerateRequest struct {
	Type  KeyType
	Label string // required, unique among the token's private keys
	// ID is the CKA_ID; when nil, a random 2-byte id not yet in use is
	// chosen (YubiHSM 2 object ids are 16 bits).
	ID []byte
}

// GenerateKey generates a key pair inside the token. The private key is a
// token object with CKA_SENSITIVE true, CKA_EXTRACTABLE false and CKA_PRIVATE
// true: its bytes never leave the token.
func (t *Token) GenerateKey(req GenerateRequest) (*Key, error) {
	if _, ok := keyTypeNames[req.Type]; !ok {
		return nil, fmt.Errorf("hsm: key type %v: %w", req.Type, ErrUnsupported)
	}
	var key *Key
	err := t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		id, err := t.newID(c, sh, req.Label, req.ID)
		if err != nil {
			return err
		}
		pubT, privT := commonTemplates(req.Type, id, req.Label)
		var mech uint
		switch {
		case req.Type.IsRSA():
			mech = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN
			pubT = append(pubT,
				pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, req.Type.rsaBits()),
				pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
		case req.Type == Ed25519:
			mech = ckmECEdwardsKeyPairGen
			pubT = append(pubT, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, req.Type.ecParams()))
		default:
			mech = pkcs11.CKM_EC_KEY_PAIR_GEN
			pubT = append(pubT, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, req.Type.ecParams()))
		}
		pubH, _, err := c.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pubT, privT)
		if err != nil {
			return fmt.Errorf("generating %v key %q: %w", req.Type, req.Label, err)
		}
		pub, err := readPublic(c, sh, pubH, req.Type)
		if err != nil {
			return err
		}
		key = &Key{t: t, id: id, label: req.Label, typ: req.Type, pub: pub}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: %w", err)
	}
	return key, nil
}

func keyTypeAttr(typ KeyType) uint {
	switch {
	case typ.IsRSA():
		return pkcs11.CKK_RSA
	case typ == Ed25519:
		return ckkECEdwards
	}
	return pkcs11.CKK_EC
}

// commonTemplates are the attributes of both halves of every key pair.
func commonTemplates(typ KeyType, id []byte, label string) (pub, priv []*pkcs11.Attribute) {
	kt := keyTypeAttr(typ)
	pub = []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, kt),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	priv = []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, kt),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		// Only RSA keys may decrypt (Sigul's decrypt operation); none may
		// unwrap or derive, which would let them act on other keys.
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, typ.IsRSA()),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	return pub, priv
}

// newID checks that label is free and returns want, or a fresh random
// 2-byte id, after checking no key already uses it.
func (t *Token) newID(c *pkcs11.Ctx, sh pkcs11.SessionHandle, label string, want []byte) ([]byte, error) {
	if label == "" {
		return nil, errors.New("a key needs a label")
	}
	hs, err := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}, 1)
	if err != nil {
		return nil, err
	}
	if len(hs) > 0 {
		return nil, fmt.Errorf("a key labelled %q: %w", label, ErrKeyExists)
	}
	for try := 0; try < 64; try++ {
		id := want
		if id == nil {
			id = make([]byte, 2)
			if _, err := rand.Read(id); err != nil {
				return nil, err
			}
			if id[0] == 0 && id[1] == 0 {
				continue // YubiHSM 2 reserves object id 0
			}
		}
		hs, err := findObjects(c, sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, id)}, 1)
		if err != nil {
			return nil, err
		}
		if len(hs) == 0 {
			return id, nil
		}
		if want != nil {
			return nil, fmt.Errorf("an object with id %x: %w", want, ErrKeyExists)
		}
	}
	return nil, errors.New("no free key id found")
}

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
				zero(a.Value)
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

// FindKey finds a private key by id, by label, or by both (both must
// match). It returns ErrKeyNotFound when there is none.
func (t *Token) FindKey(id []byte, label string) (*Key, error) {
	if id == nil && label == "" {
		return nil, errors.New("hsm: FindKey needs an id or a label")
	}
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}
	if id != nil {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	}
	if label != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	keys, err := t.keys(tmpl)
	if err != nil {
		return nil, err
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("hsm: no key with %s in token %q: %w", describe(id, label), t.name(), ErrKeyNotFound)
	case 1:
		return keys[0], nil
	}
	return nil, fmt.Errorf("hsm: %d keys match %s in token %q; name the key by id", len(keys), describe(id, label), t.name())
}

func describe(id []byte, label string) string {
	switch {
	case id != nil && label != "":
		return fmt.Sprintf("id %x and label %q", id, label)
	case id != nil:
		return fmt.Sprintf("id %x", id)
	}
	return fmt.Sprintf("label %q", label)
}

// Keys lists the token's private keys of supported types.
func (t *Token) Keys() ([]*Key, error) {
	return t.keys([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)})
}

func (t *Token) keys(tmpl []*pkcs11.Attribute) ([]*Key, error) {
	var out []*Key
	err := t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		out = out[:0]
		hs, err := findObjects(c, sh, tmpl, 0)
		if err != nil {
			return err
		}
		for _, h := range hs {
			k, err := t.loadKey(c, sh, h)
			if errors.Is(err, ErrUnsupported) {
				continue
			}
			if err != nil {
				return err
			}
			k.h.Store(&objectRef{h: h, gen: gen})
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: listing keys: %w", err)
	}
	return out, nil
}

// loadKey reads a private key object's id, label and type, and its public
// key from the public object with the same id.
func (t *Token) loadKey(c *pkcs11.Ctx, sh pkcs11.SessionHandle, priv pkcs11.ObjectHandle) (*Key, error) {
	attrs, err := c.GetAttributeValue(sh, priv, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
	})
	if err != nil {
		return nil, err
	}
	id, label := attrs[0].Value, string(attrs[1].Value)
	hs, err := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}, 1)
	if err != nil {
		return nil, err
	}
	src := priv // RSA private keys carry the modulus and exponent too
	if len(hs) == 1 {
		src = hs[0]
	}
	var typ KeyType
	switch kt := ulong(attrs[2].Value); kt {
	case pkcs11.CKK_RSA:
		typ = RSA2048 // refined from the modulus below
	case pkcs11.CKK_EC:
		typ = ECDSAP256 // refined from the curve below
	case ckkECEdwards:
		typ = Ed25519
	default:
		return nil, fmt.Errorf("key %q has key type 0x%x: %w", label, kt, ErrUnsupported)
	}
	pub, err := readPublic(c, sh, src, typ)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", label, err)
	}
	if typ, err = KeyTypeOf(pub); err != nil {
		return nil, err
	}
	return &Key{t: t, id: id, label: label, typ: typ, pub: pub}, nil
}

// readPublic reads a public key from an object. For EC keys the curve is
// taken from CKA_EC_PARAMS, not from typ.
func readPublic(c *pkcs11.Ctx, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, typ KeyType) (crypto.PublicKey, error) {
	if typ.IsRSA() {
		a, err := c.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("reading RSA public key: %w", err)
		}
		e := new(big.Int).SetBytes(a[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31-1 || e.Int64() < 3 {
			return nil, fmt.Errorf("RSA public exponent %v is out of range", e)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(a[0].Value), E: int(e.Int64())}, nil
	}
	a, err := c.GetAttributeValue(sh, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("reading EC public key: %w", err)
	}
	point := a[1].Value
	var inner []byte
	if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
		point = inner // the standard form: a DER OCTET STRING around the point
	}
	switch {
	case bytes.Equal(a[0].Value, oidEd25519) || typ == Ed25519:
		if len(point) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 public key is %d bytes", len(point))
		}
		return ed25519.PublicKey(append([]byte(nil), point...)), nil
	case bytes.Equal(a[0].Value, oidP256):
		return ecdsa.ParseUncompressedPublicKey(ECDSAP256.curve(), point)
	case bytes.Equal(a[0].Value, oidP384):
		return ecdsa.ParseUncompressedPublicKey(ECDSAP384.curve(), point)
	}
	return nil, fmt.Errorf("EC parameters %x: %w", a[0].Value, ErrUnsupported)
}

// DeleteKey destroys the private key with the given id or label and every
// public key object with the same id.
func (t *Token) DeleteKey(id []byte, label string) error {
	k, err := t.FindKey(id, label)
	if err != nil {
		return err
	}
	err = t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) error {
		for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			hs, err := findObjects(c, sh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
				pkcs11.NewAttribute(pkcs11.CKA_ID, k.id),
			}, 0)
			if err != nil {
				return err
			}
			for _, h := range hs {
				if err := c.DestroyObject(sh, h); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hsm: deleting key %q: %w", k.label, err)
	}
	return nil
}

// findObjects returns up to max (0: all) objects matching tmpl.
func findObjects(c *pkcs11.Ctx, sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute, max int) ([]pkcs11.ObjectHandle, error) {
	if err := c.FindObjectsInit(sh, tmpl); err != nil {
		return nil, err
	}
	var out []pkcs11.ObjectHandle
	for {
		hs, _, err := c.FindObjects(sh, 64)
		if err != nil {
			c.FindObjectsFinal(sh)
			return nil, err
		}
		out = append(out, hs...)
		if len(hs) == 0 || (max > 0 && len(out) >= max) {
			break
		}
	}
	if err := c.FindObjectsFinal(sh); err != nil {
		return nil, err
	}
	return out, nil
}

// ulong decodes a CK_ULONG attribute, which is in host byte order.
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0)
}

// Decrypt decrypts an RSA PKCS#1 v1.5 encrypted block with the key in the
// token, following the crypto.Decrypter contract. Only RSA keys decrypt,
// and only with PKCS#1 v1.5 (opts nil or *rsa.PKCS1v15DecryptOptions, whose
// SessionKeyLen is not supported: a wrong key or a corrupt block is an
// error). OAEP is refused. rand is ignored.
func (k *Key) Decrypt(_ io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	if !k.typ.IsRSA() {
		return nil, fmt.Errorf("hsm: key %q is %v, which cannot decrypt: %w", k.label, k.typ, ErrUnsupported)
	}
	switch o := opts.(type) {
	case nil:
	case *rsa.PKCS1v15DecryptOptions:
		if o.SessionKeyLen != 0 {
			return nil, fmt.Errorf("hsm: PKCS#1 v1.5 SessionKeyLen: %w", ErrUnsupported)
		}
	default:
		return nil, fmt.Errorf("hsm: decryption options %T: %w", opts, ErrUnsupported)
	}
	var out []byte
	err := k.t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		h, err := k.handle(c, sh, gen)
		if err != nil {
			return err
		}
		if err := c.DecryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, h); err != nil {
			return err
		}
		out, err = c.Decrypt(sh, ciphertext)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: decrypting with key %q: %w", k.label, err)
	}
	return out, nil
}
