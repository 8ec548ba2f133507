package stacktest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

// TestWritePKI checks that each certificate WritePKI writes loads with its
// key and verifies against the CA for the names and uses the programs'
// configurations rely on.
func TestWritePKI(t *testing.T) {
	dir := WritePKI(t, filepath.Join(t.TempDir(), "pki"), "stacktest CA")
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	for _, c := range []struct {
		name, dns string
		usages    []x509.ExtKeyUsage
	}{
		{"bridge", "localhost", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{"bridge", "127.0.0.1", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{"server", "server", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{"alice", "", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	} {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, c.name+".pem"), filepath.Join(dir, c.name+"-key.pem"))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, u := range c.usages {
			if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: c.dns, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("%s for %q, usage %v: %v", c.name, c.dns, u, err)
			}
		}
		if fi, err := os.Stat(filepath.Join(dir, c.name+"-key.pem")); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s-key.pem has mode %v", c.name, fi.Mode())
		}
	}
	pair, _ := tls.LoadX509KeyPair(filepath.Join(dir, "alice.pem"), filepath.Join(dir, "alice-key.pem"))
	if pair.Leaf.Subject.CommonName != "alice" {
		t.Errorf("alice.pem's CN is %q", pair.Leaf.Subject.CommonName)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("alice.pem verifies as a TLS server")
	}
}
