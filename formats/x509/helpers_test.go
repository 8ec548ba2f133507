package x509

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// keyType is one of the key types the tests run over.
type keyType struct {
	name   string
	gen    func() (crypto.Signer, error)
	sigAlg stdx509.SignatureAlgorithm
	// osslSig is how "openssl x509 -text" names the signature algorithm.
	osslSig string
}

var keyTypes = []keyType{
	{"RSA-2048", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }, stdx509.SHA256WithRSA, "sha256WithRSAEncryption"},
	{"ECDSA-P256", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }, stdx509.ECDSAWithSHA256, "ecdsa-with-SHA256"},
	{"ECDSA-P384", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) }, stdx509.ECDSAWithSHA384, "ecdsa-with-SHA384"},
	{"Ed25519", func() (crypto.Signer, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}, stdx509.PureEd25519, "ED25519"},
}

// opaqueSigner hides the concrete private key type, as a PKCS#11 token
// does, so that the code under test can only use crypto.Signer. It records
// the options of every Sign call.
type opaqueSigner struct {
	inner crypto.Signer
	mu    sync.Mutex
	opts  []crypto.SignerOpts
}

func (s *opaqueSigner) Public() crypto.PublicKey { return s.inner.Public() }

func (s *opaqueSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.Lock()
	s.opts = append(s.opts, opts)
	s.mu.Unlock()
	return s.inner.Sign(r, digest, opts)
}

func (s *opaqueSigner) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.opts)
}

func newSigner(t *testing.T, kt keyType) *opaqueSigner {
	t.Helper()
	k, err := kt.gen()
	if err != nil {
		t.Fatalf("generating %s key: %v", kt.name, err)
	}
	return &opaqueSigner{inner: k}
}

// checkSignOpts checks that every signature was made as the key type
// requires: PKCS#1 v1.5 with SHA-256 for RSA (never PSS), the curve's hash
// for ECDSA and no pre-hash for Ed25519.
func checkSignOpts(t *testing.T, kt keyType, s *opaqueSigner) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.opts) == 0 {
		t.Errorf("%s: signer was never used", kt.name)
	}
	want := map[stdx509.SignatureAlgorithm]crypto.Hash{
		stdx509.SHA256WithRSA:   crypto.SHA256,
		stdx509.ECDSAWithSHA256: crypto.SHA256,
		stdx509.ECDSAWithSHA384: crypto.SHA384,
		stdx509.PureEd25519:     crypto.Hash(0),
	}[kt.sigAlg]
	for _, o := range s.opts {
		h, ok := o.(crypto.Hash)
		if !ok {
			t.Errorf("%s: signer called with %T options (PSS?), want crypto.Hash", kt.name, o)
			continue
		}
		if h != want {
			t.Errorf("%s: signer called with hash %v, want %v", kt.name, h, want)
		}
	}
}

func requireOpenSSL(t *testing.T) {
	t.Helper()
	testenv.MustHave(t, "openssl")
}

// openssl runs openssl in dir and returns its combined output and whether
// it exited successfully.
func openssl(t *testing.T, dir string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("running openssl %s: %v", strings.Join(args, " "), err)
		}
		return string(out), false
	}
	return string(out), true
}

func mustOpenSSL(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, ok := openssl(t, dir, args...)
	if !ok {
		t.Fatalf("openssl %s failed:\n%s", strings.Join(args, " "), out)
	}
	return out
}

func mustFailOpenSSL(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, ok := openssl(t, dir, args...)
	if ok {
		t.Fatalf("openssl %s succeeded but should fail:\n%s", strings.Join(args, " "), out)
	}
	return out
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeCert(t *testing.T, dir, name string, c *stdx509.Certificate) string {
	t.Helper()
	return writeFile(t, dir, name, EncodeCertificatePEM(c))
}

func caRequest(cn string, pathLen int) Request {
	return Request{
		Kind:     CA,
		Subject:  pkix.Name{CommonName: cn, Organization: []string{"Signet Test"}},
		Validity: 10 * 365 * 24 * time.Hour,
		PathLen:  pathLen,
	}
}

func mustCA(t *testing.T, s crypto.Signer, req Request) *stdx509.Certificate {
	t.Helper()
	c, err := SelfSignedCA(s, req)
	if err != nil {
		t.Fatalf("SelfSignedCA: %v", err)
	}
	return c
}

func mustIssue(t *testing.T, issuer *stdx509.Certificate, s crypto.Signer, pub crypto.PublicKey, req Request) *stdx509.Certificate {
	t.Helper()
	c, err := Issue(issuer, s, pub, req)
	if err != nil {
		t.Fatalf("Issue %v: %v", req.Kind, err)
	}
	return c
}

// criticality returns, by OID string, whether each extension is critical.
func criticality(c *stdx509.Certificate) map[string]bool {
	m := map[string]bool{}
	for _, e := range c.Extensions {
		m[e.Id.String()] = e.Critical
	}
	return m
}

const (
	oidBasicConstraints = "2.5.29.19"
	oidKeyUsage         = "2.5.29.15"
	oidSKI              = "2.5.29.14"
	oidAKI              = "2.5.29.35"
	oidEKU              = "2.5.29.37"
	oidSAN              = "2.5.29.17"
)
