// This file holds SignFile, a signature made directly in the ceremony.

package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/hsm"
)

// SignFormat is the kind of signature SignFile makes.
type SignFormat int

// Signature formats for SignFile.
const (
	// SignOpenPGP is an OpenPGP detached signature (binary document type).
	SignOpenPGP SignFormat = iota + 1
	// SignRaw is the bare signature: PKCS#1 v1.5 over SHA-256 for RSA,
	// ASN.1 ECDSA over SHA-256 (SHA-384 for P-384), or Ed25519 over the
	// data itself, as `openssl dgst -verify` / `pkeyutl -verify` check it.
	SignRaw
)

// SignFile signs data with a key directly in the ceremony (for instance
// to test a new key, or to sign a key-transition statement), and records
// the SHA-256 of what was signed.
func (a *Admin) SignFile(ctx context.Context, keyName string, data []byte, format SignFormat) ([]byte, error) {
	sum := sha256.Sum256(data)
	e := a.keyEntry(ctx, "key-sign", keyName, "sha256:"+hex.EncodeToString(sum[:]))
	sig, err := func() ([]byte, error) {
		hk, k, err := a.Signer(ctx, keyName)
		if err != nil {
			return nil, err
		}
		switch format {
		case SignOpenPGP:
			pk, err := openpgp.NewKey(hk, k.PGPCreated)
			if err != nil {
				return nil, err
			}
			return pk.SignDetached(bytes.NewReader(data), false, a.now())
		case SignRaw:
			if hk.Type() == hsm.Ed25519 {
				return hk.Sign(nil, data, crypto.Hash(0))
			}
			h := crypto.SHA256
			if hk.Type() == hsm.ECDSAP384 {
				h = crypto.SHA384
			}
			d := h.New()
			d.Write(data)
			return hk.Sign(nil, d.Sum(nil), h)
		}
		return nil, fmt.Errorf("unknown signature format %d", format)
	}()
	if err := a.record(ctx, e, err); err != nil {
		return nil, err
	}
	return sig, nil
}
