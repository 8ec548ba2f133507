// This file holds Key.Sign: the choice of PKCS#11 mechanism for RSA
// (PKCS#1 v1.5, PSS), ECDSA and Ed25519, and the conversion of ECDSA
// signatures to ASN.1.

package hsm

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"runtime"

	"github.com/miekg/pkcs11"
)

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
		// The thread's CPU clock around the two calls measures what the
		// token's own code costs this process (SoftHSM2 signs on the
		// server's CPU; a device's time is spent waiting), so that the
		// server's own cost per signature can be told from the token's.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu0 := threadCPU()
		defer func() { k.t.signCPU.Add(threadCPU() - cpu0) }()
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
