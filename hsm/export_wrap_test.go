package hsm

import "github.com/miekg/pkcs11"

// UnwrapAsPublicObject tries what an intruder with the token but without
// its PIN would: unwrap a backup, in a session of its own that may or may
// not be logged in, as a non-sensitive, extractable session object whose
// value can be read. It returns the value if the token allowed it.
func UnwrapAsPublicObject(t *Token, p WrapProfile, wrapID string, wrapped []byte, typ KeyType) ([]byte, error) {
	c := t.mod.ctx
	sh, err := c.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, err
	}
	defer c.CloseSession(sh)
	wh, err := findSecret(c, sh, wrapKeyLabel(wrapID))
	if err != nil {
		return nil, err
	}
	h, err := c.UnwrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(p.Mechanism, nil)}, wh, wrapped, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyTypeAttr(typ)),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	})
	if err != nil {
		return nil, err
	}
	a, err := c.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_PRIVATE_EXPONENT, nil)})
	if err != nil {
		return nil, err
	}
	return a[0].Value, nil
}

// DecryptWithWrapKey tries C_Decrypt with the wrap key, which would open a
// backup without unwrapping it.
func DecryptWithWrapKey(t *Token, p WrapProfile, wrapID string, wrapped []byte) ([]byte, error) {
	var out []byte
	err := t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) error {
		wh, err := findSecret(c, sh, wrapKeyLabel(wrapID))
		if err != nil {
			return err
		}
		if err := c.DecryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(p.Mechanism, nil)}, wh); err != nil {
			return err
		}
		out, err = c.Decrypt(sh, wrapped)
		return err
	})
	return out, err
}
