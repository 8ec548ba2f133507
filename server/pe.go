package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/signet-project/signet/formats/authenticode"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server/store"
)

// signPE signs a PE/EFI image with Authenticode: the key, and its stored
// certificate cert-name with the intermediate certificates that issued it
// (as stored under any key) as the chain. The image's existing signatures are kept
// (shim accepts an image if any signature verifies) unless the signet
// extension field replace-signatures is set.
func (h *Handlers) signPE(ctx context.Context, r *Request) (*Response, error) {
	certName, err := str(r, "cert-name")
	if err != nil {
		return nil, err
	}
	replace, err := optBool(r, "replace-signatures", false)
	if err != nil {
		return nil, err
	}
	ka, err := h.keyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	if len(ka.Key.PGPCertificate) > 0 {
		return nil, &refusal{status: protocol.CodeUnsupportedKeytype, message: fmt.Sprintf("key %s is an OpenPGP (gnupg) key: Authenticode needs an RSA or ECC key with an X.509 certificate", ka.Key.Name)}
	}
	c, err := h.Store.GetCertificate(ctx, ka.Key.Name, certName)
	var nf *store.NotFoundError
	if errors.As(err, &nf) {
		return nil, &refusal{status: protocol.CodeUnknownError, message: fmt.Sprintf("key %s has no certificate named %s (make one with sign-certificate)", ka.Key.Name, certName)}
	}
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return nil, fmt.Errorf("stored certificate %s/%s: %w", ka.Key.Name, certName, err)
	}
	chain, err := h.issuerChain(ctx, cert)
	if err != nil {
		return nil, err
	}
	ra, err := payloadAt(r)
	if err != nil {
		return nil, err
	}
	img, err := authenticode.Parse(ra, r.PayloadSize)
	if err != nil {
		if errors.Is(err, authenticode.ErrNotPE) {
			return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
		}
		return nil, err
	}
	signer, err := h.signer(ka)
	if err != nil {
		return nil, err
	}
	var digest []byte
	f, n, err := spoolOutput(h.SpoolDir, func(w io.Writer) error {
		var err error
		digest, err = authenticode.Sign(w, img, signer, authenticode.SignOptions{Certificate: cert, Chain: chain, Replace: replace, Time: h.now()})
		return err
	})
	if err != nil {
		if errors.Is(err, authenticode.ErrNotPE) {
			return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
		}
		return nil, err
	}
	return &Response{Payload: f, PayloadSize: n,
		Audit: fmt.Sprintf("authenticode-sha256=%x machine=%s certificate=%s/%s serial=%x subject=%q replace=%t",
			digest, img.Machine(), ka.Key.Name, certName, cert.SerialNumber, cert.Subject.String(), replace)}, nil
}

// issuerChain returns the stored certificates that issued cert, nearest
// first, up to a self-signed root (left out), looked up by subject and
// authority key identifier among every stored certificate.
func (h *Handlers) issuerChain(ctx context.Context, cert *x509.Certificate) ([]*x509.Certificate, error) {
	keys, err := h.Store.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var all []*x509.Certificate
	for _, k := range keys {
		cs, err := h.Store.ListCertificates(ctx, k.Name)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if x, err := x509.ParseCertificate(c.DER); err == nil {
				all = append(all, x)
			}
		}
	}
	var chain []*x509.Certificate
	cur := cert
	for len(chain) < 8 && !isSelfSigned(cur) {
		var next *x509.Certificate
		for _, c := range all {
			if c.IsCA && bytes.Equal(c.RawSubject, cur.RawIssuer) &&
				(len(cur.AuthorityKeyId) == 0 || bytes.Equal(c.SubjectKeyId, cur.AuthorityKeyId)) &&
				cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil || isSelfSigned(next) {
			// The root is the verifier's trust anchor (db, or sbverify
			// --cert): embedding it would only make verifiers that are
			// given the signer's certificate as anchor build a chain to
			// an untrusted root.
			break
		}
		chain = append(chain, next)
		cur = next
	}
	return chain, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}
