package x509

import (
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

// stdCA makes a self-signed CA with the standard library directly, for
// issuers this package would never create.
func stdCA(t *testing.T, s crypto.Signer, cn string, ku stdx509.KeyUsage, eku []stdx509.ExtKeyUsage) *stdx509.Certificate {
	t.Helper()
	tmpl := &stdx509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            -1,
		KeyUsage:              ku,
		ExtKeyUsage:           eku,
	}
	der, err := stdx509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := stdx509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIssueRefusals(t *testing.T) {
	p256 := keyTypes[1]
	rootS, otherS, leafS := newSigner(t, p256), newSigner(t, p256), newSigner(t, p256)
	root := mustCA(t, rootS, caRequest("Refusal Root", 1))
	ca0 := mustCA(t, otherS, caRequest("Pathlen Zero", 0))
	leaf := mustIssue(t, root, rootS, leafS.Public(), Request{
		Kind: CodeSigning, Subject: pkix.Name{CommonName: "Leaf"}, Validity: time.Hour,
	})
	noCertSignS := newSigner(t, p256)
	noCertSign := stdCA(t, noCertSignS, "No CertSign", stdx509.KeyUsageDigitalSignature|stdx509.KeyUsageCRLSign, nil)
	tlsOnlyS := newSigner(t, p256)
	tlsOnly := stdCA(t, tlsOnlyS, "TLS only", stdx509.KeyUsageCertSign, []stdx509.ExtKeyUsage{stdx509.ExtKeyUsageServerAuth})

	subjPub := newSigner(t, p256).Public()
	ecdhKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cs := func(mod func(*Request)) Request {
		r := Request{Kind: CodeSigning, Subject: pkix.Name{CommonName: "Subject"}, Validity: time.Hour}
		if mod != nil {
			mod(&r)
		}
		return r
	}

	for _, tc := range []struct {
		name   string
		issuer *stdx509.Certificate
		signer *opaqueSigner
		pub    crypto.PublicKey
		req    Request
		want   string
	}{
		{"issuer is not a CA", leaf, leafS, subjPub, cs(nil), "is not a CA"},
		{"issuer lacks certSign", noCertSign, noCertSignS, subjPub, cs(nil), "lacks keyUsage keyCertSign"},
		{"mismatched issuer signer", root, otherS, subjPub, cs(nil), "does not match the public key of issuer"},
		{"TLS without DNS name", root, rootS, subjPub, Request{Kind: TLSServer, Subject: pkix.Name{CommonName: "www.example.org"}, Validity: time.Hour}, "needs at least one DNS name"},
		{"TLS with IP as DNS name", root, rootS, subjPub, Request{Kind: TLSServer, DNSNames: []string{"192.0.2.1"}, Validity: time.Hour}, "IP address"},
		{"TLS with bare wildcard", root, rootS, subjPub, Request{Kind: TLSServer, DNSNames: []string{"*.org"}, Validity: time.Hour}, "wildcard"},
		{"TLS with inner wildcard", root, rootS, subjPub, Request{Kind: TLSServer, DNSNames: []string{"a.*.example.org"}, Validity: time.Hour}, "wildcard"},
		{"TLS with empty label", root, rootS, subjPub, Request{Kind: TLSServer, DNSNames: []string{"a..example.org"}, Validity: time.Hour}, "empty label"},
		{"TLS with space", root, rootS, subjPub, Request{Kind: TLSServer, DNSNames: []string{"a b.example.org"}, Validity: time.Hour}, "invalid character"},
		{"DNS names on code signing", root, rootS, subjPub, cs(func(r *Request) { r.DNSNames = []string{"x.example.org"} }), "only allowed in TLS"},
		{"DNS names on CA", root, rootS, subjPub, Request{Kind: CA, Subject: pkix.Name{CommonName: "Sub"}, Validity: time.Hour, DNSNames: []string{"x.example.org"}}, "only allowed in TLS"},
		{"validity past issuer", root, rootS, subjPub, cs(func(r *Request) { r.Validity = 20 * 365 * 24 * time.Hour }), "after issuer's NotAfter"},
		{"NotAfter equals NotBefore", root, rootS, subjPub, cs(func(r *Request) {
			r.Validity = 0
			r.NotBefore = time.Now()
			r.NotAfter = r.NotBefore
		}), "is not after NotBefore"},
		{"NotAfter before NotBefore", root, rootS, subjPub, cs(func(r *Request) {
			r.Validity = 0
			r.NotBefore = time.Now()
			r.NotAfter = r.NotBefore.Add(-time.Minute)
		}), "is not after NotBefore"},
		{"both NotAfter and Validity", root, rootS, subjPub, cs(func(r *Request) { r.NotAfter = time.Now().Add(time.Hour) }), "not both"},
		{"no validity", root, rootS, subjPub, cs(func(r *Request) { r.Validity = 0 }), "no validity period"},
		{"negative validity", root, rootS, subjPub, cs(func(r *Request) { r.Validity = -time.Hour }), "negative Validity"},
		{"kind not set", root, rootS, subjPub, cs(func(r *Request) { r.Kind = 0 }), "invalid certificate kind"},
		{"empty subject for code signing", root, rootS, subjPub, cs(func(r *Request) { r.Subject = pkix.Name{} }), "needs a subject name"},
		{"subject equals issuer", root, rootS, subjPub, cs(func(r *Request) { r.Subject = root.Subject }), "equals the issuer's subject"},
		{"subject key is issuer key", root, rootS, rootS.Public(), cs(nil), "issuer's own key"},
		{"subject key RSA-1024", root, rootS, rsa1024Signer(t).Public(), cs(nil), "too small"},
		{"subject key P-224", root, rootS, p224Signer(t).Public(), cs(nil), "unsupported ECDSA curve"},
		{"subject key X25519", root, rootS, ecdhKey.PublicKey(), cs(nil), "unsupported public key type"},
		{"CA below pathlen 0", ca0, otherS, subjPub, caRequest("Sub CA", 0), "pathlen 0"},
		{"unlimited CA below pathlen 1", root, rootS, subjPub, caRequest("Sub CA", -1), "PathLen between 0 and 0"},
		{"CA pathlen too large", root, rootS, subjPub, caRequest("Sub CA", 1), "PathLen between 0 and 0"},
		{"EKU-restricted issuer", tlsOnly, tlsOnlyS, subjPub, cs(nil), "does not allow codesigning"},
		{"zero serial", root, rootS, subjPub, cs(func(r *Request) { r.SerialNumber = big.NewInt(0) }), "not positive"},
		{"negative serial", root, rootS, subjPub, cs(func(r *Request) { r.SerialNumber = big.NewInt(-5) }), "not positive"},
		{"serial over 20 octets", root, rootS, subjPub, cs(func(r *Request) { r.SerialNumber = new(big.Int).Lsh(big.NewInt(1), 159) }), "20 octets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.signer.calls()
			c, err := Issue(tc.issuer, tc.signer, tc.pub, tc.req)
			if err == nil {
				t.Fatalf("Issue succeeded (%v), want error containing %q", c.Subject, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if n := tc.signer.calls() - before; n != 0 {
				t.Errorf("refused request still used the signer %d times", n)
			}
		})
	}

	// Sanity check of the fixtures: the EKU-restricted CA may issue what it
	// allows, and the root may issue a CA within its path length.
	if _, err := Issue(tlsOnly, tlsOnlyS, subjPub, Request{Kind: TLSServer, DNSNames: []string{"ok.example.org"}, Validity: time.Hour}); err != nil {
		t.Errorf("TLS from TLS-only CA: %v", err)
	}
	// A shorter validity than the root's: caRequest's ten years, counted
	// from a later second, can end after the root's NotAfter.
	within := caRequest("Sub CA", 0)
	within.Validity = 24 * time.Hour
	if _, err := Issue(root, rootS, subjPub, within); err != nil {
		t.Errorf("CA within path length: %v", err)
	}
	if _, err := Issue(nil, rootS, subjPub, cs(nil)); err == nil {
		t.Error("nil issuer accepted")
	}
	if _, err := Issue(root, nil, subjPub, cs(nil)); err == nil {
		t.Error("nil issuer signer accepted")
	}
}

func TestSelfSignedCARefusals(t *testing.T) {
	s := newSigner(t, keyTypes[1])
	for _, tc := range []struct {
		name   string
		signer crypto.Signer
		req    Request
		want   string
	}{
		{"kind not set", s, Request{Subject: pkix.Name{CommonName: "x"}, Validity: time.Hour}, "needs Kind ca"},
		{"code signing kind", s, Request{Kind: CodeSigning, Subject: pkix.Name{CommonName: "x"}, Validity: time.Hour}, "needs Kind ca"},
		{"empty subject", s, Request{Kind: CA, Validity: time.Hour}, "needs a subject name"},
		{"bad path length", s, Request{Kind: CA, Subject: pkix.Name{CommonName: "x"}, Validity: time.Hour, PathLen: -2}, "invalid PathLen"},
		{"no validity", s, Request{Kind: CA, Subject: pkix.Name{CommonName: "x"}}, "no validity period"},
		{"nil signer", nil, caRequest("x", 0), "no signer"},
		{"RSA-1024 signer", rsa1024Signer(t), caRequest("x", 0), "too small"},
		{"P-224 signer", p224Signer(t), caRequest("x", 0), "unsupported ECDSA curve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SelfSignedCA(tc.signer, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if s.calls() != 0 {
		t.Errorf("refused requests used the signer %d times", s.calls())
	}
}
