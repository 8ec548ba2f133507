// This file holds Key.Decrypt, RSA PKCS#1 v1.5 decryption in the token.

package hsm

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"io"

	"github.com/miekg/pkcs11"
)

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
	//lint:ignore SA1019 Sigul's decrypt is OpenPGP's, which uses PKCS #1 v1.5 for RSA
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
