package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sx509 "github.com/signet-project/signet/formats/x509"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server/store"
)

// lettersOnly is Sigul's rule for certificate names (§8.3 sign-certificate).
func lettersOnly(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// parseValidity reads Sigul's validity, "<N>y", N×365 days.
func parseValidity(s string) (time.Duration, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(s, "y"))
	if !strings.HasSuffix(s, "y") || err != nil || n < 1 || n > 100 {
		return 0, fmt.Errorf("validity %q is not <N>y with N from 1 to 100 years", s)
	}
	return time.Duration(n) * 365 * 24 * time.Hour, nil
}

// signCertificate issues an X.509 certificate for subject-key, signed by
// issuer-key with its certificate issuer-certificate-name (or self-signed
// when that is absent), and stores it as subject-certificate-name of the
// subject key, where sign-pe finds it.
func (h *Handlers) signCertificate(ctx context.Context, r *Request) (*Response, error) {
	var f [6]string
	for i, name := range []string{"issuer-key", "subject-key", "subject-certificate-name", "subject", "validity", "certificate-type"} {
		v, err := str(r, name)
		if err != nil {
			return nil, err
		}
		f[i] = v
	}
	issuerKey, subjectKey, certName, subject, validity, certType := f[0], f[1], f[2], f[3], f[4], f[5]
	issuerCert := string(r.Fields["issuer-certificate-name"])
	_, named := r.Fields["issuer-certificate-name"]
	if !lettersOnly(certName) || named && !lettersOnly(issuerCert) {
		return nil, fmt.Errorf("%w: certificate names must be ASCII letters only", ErrDrop)
	}
	ka, err := h.Auth.KeyUser(ctx, r.User, issuerKey, r.Secrets["passphrase"], false)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	sk, err := h.Store.GetKey(ctx, subjectKey)
	if err != nil {
		return nil, storeStatus(err)
	}
	for _, k := range []store.Key{ka.Key, sk} {
		if len(k.PGPCertificate) > 0 {
			return nil, &refusal{status: protocol.CodeUnsupportedKeytype, message: fmt.Sprintf("key %s is an OpenPGP (gnupg) key: X.509 certificates need an RSA or ECC key", k.Name)}
		}
	}
	if _, err := h.Store.GetCertificate(ctx, subjectKey, certName); err == nil {
		return nil, fmt.Errorf("%w: key %s already has a certificate named %s", ErrDrop, subjectKey, certName)
	}
	kind, err := sx509.ParseKind(certType)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDrop, err)
	}
	req := sx509.Request{Kind: kind}
	if req.Validity, err = parseValidity(validity); err != nil {
		return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
	}
	if req.Subject, err = sx509.ParseSubject(subject); err != nil {
		return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
	}
	if kind == sx509.TLSServer && req.Subject.CommonName != "" {
		req.DNSNames = []string{req.Subject.CommonName}
	}
	issuer, err := h.signer(ka)
	if err != nil {
		return nil, err
	}
	var cert *x509.Certificate
	var clamped bool
	if !named {
		if issuerKey != subjectKey || kind != sx509.CA {
			return nil, &refusal{status: protocol.CodeUnknownError, message: "without issuer-certificate-name the certificate is self-signed: it must be a ca certificate of the issuer key itself"}
		}
		cert, err = sx509.SelfSignedCA(issuer, req)
	} else {
		ic, gerr := h.Store.GetCertificate(ctx, issuerKey, issuerCert)
		var nf *store.NotFoundError
		if errors.As(gerr, &nf) {
			return nil, fmt.Errorf("%w: key %s has no certificate named %s", ErrDrop, issuerKey, issuerCert)
		}
		if gerr != nil {
			return nil, gerr
		}
		icert, perr := x509.ParseCertificate(ic.DER)
		if perr != nil {
			return nil, fmt.Errorf("stored certificate %s/%s: %w", issuerKey, issuerCert, perr)
		}
		pub, perr := x509.ParsePKIXPublicKey(sk.PublicKey)
		if perr != nil {
			return nil, fmt.Errorf("key %s: %w", subjectKey, perr)
		}
		clamped = clampValidity(&req, icert, time.Now())
		cert, err = sx509.Issue(icert, issuer, pub, req)
	}
	if err != nil {
		return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
	}
	note := fmt.Sprintf("certificate=%s/%s type=%s subject=%q serial=%x issuer=%s/%s", subjectKey, certName, certType,
		cert.Subject.String(), cert.SerialNumber, issuerKey, issuerCert)
	var clampMsg string
	if clamped {
		clampMsg = clampMessage(validity, issuerKey, issuerCert, cert.NotAfter)
		note += " notafter-clamped: " + clampMsg
	}
	r.noteAudit("%s", note)
	if _, err := h.Store.PutCertificate(ctx, subjectKey, certName, cert.Raw, false); err != nil {
		return nil, storeStatus(err)
	}
	resp := withPayload(sx509.EncodeCertificatePEM(cert))
	resp.Audit = r.auditNote
	if clamped {
		resp.Fields = append(resp.Fields, Field{"message", []byte(safeMessage(clampMsg))})
	}
	return resp, nil
}

// clampValidity sets req's end of validity: now plus the requested
// validity, or the issuer certificate's NotAfter if that comes first.
// Sigul does not check this at all, so scripts written for it ask for the
// same validity for a CA and, moments later, for the certificates it
// issues; refusing would break them whenever the second request lands in
// a later second. It reports whether it clamped.
func clampValidity(req *sx509.Request, issuer *x509.Certificate, now time.Time) bool {
	want := now.Add(req.Validity).Truncate(time.Second)
	end := issuer.NotAfter.UTC()
	req.Validity = 0
	if want.After(end) {
		req.NotAfter = end
		return true
	}
	req.NotAfter = want
	return false
}

func clampMessage(validity, issuerKey, issuerCert string, notAfter time.Time) string {
	return fmt.Sprintf("validity %s would outlast issuer certificate %s/%s: NotAfter clamped to the issuer's, %s",
		validity, issuerKey, issuerCert, notAfter.UTC().Format(time.RFC3339))
}
