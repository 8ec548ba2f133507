// This file holds key generation and the attribute templates every key
// pair gets, generated or imported.

package hsm

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// GenerateRequest asks the token to generate a key pair.
type GenerateRequest struct {
	Type  KeyType
	Label string // required, unique among the token's private keys
	// ID is the CKA_ID; when nil, a random 2-byte id not yet in use is
	// chosen (YubiHSM 2 object ids are 16 bits).
	ID []byte
	// Backup makes the private key extractable, but only wrapped under a
	// trusted wrap key (CKA_EXTRACTABLE and CKA_WRAP_WITH_TRUSTED), so
	// that it can be backed up and restored into another token. It is
	// chosen now and can never be changed.
	Backup bool
}

// GenerateKey generates a key pair inside the token. The private key is a
// token object with CKA_SENSITIVE true, CKA_EXTRACTABLE false and CKA_PRIVATE
// true: its bytes never leave the token; with req.Backup they leave it only
// wrapped under a trusted wrap key (see Key.Wrap).
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
		if req.Backup {
			privT = backupTemplate(privT)
		}
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
