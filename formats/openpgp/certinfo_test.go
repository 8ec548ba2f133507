package openpgp

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCertificateExpiring(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	created := time.Unix(1700000000, 0)
	k, err := NewKey(priv, created)
	if err != nil {
		t.Fatal(err)
	}
	expires := created.Add(365 * 24 * time.Hour)
	cert, err := k.CertificateExpiring([]string{"B <b@example.org>", "A <a@example.org>"}, created.Add(time.Hour), expires)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParseCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Expires.Equal(expires) || strings.Join(info.UserIDs, ";") != "A <a@example.org>;B <b@example.org>" {
		t.Fatalf("ParseCertificate = %+v", info)
	}
	// gpg reads the same expiration time (field 7 of the pub record).
	home := t.TempDir()
	os.Chmod(home, 0o700)
	defer exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	path := filepath.Join(home, "cert.pgp")
	os.WriteFile(path, cert, 0o600)
	if out, err := exec.Command("gpg", "--batch", "--homedir", home, "--import", path).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	out, err := exec.Command("gpg", "--batch", "--homedir", home, "--with-colons", "--list-keys").Output()
	if err != nil {
		t.Fatal(err)
	}
	var pub []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "pub:") {
			pub = strings.Split(line, ":")
		}
	}
	if len(pub) < 7 || pub[6] != "1731536000" {
		t.Fatalf("gpg's pub record %q: want expiration 1731536000", pub)
	}
	plain, _ := k.Certificate([]string{"A <a@example.org>"}, created.Add(time.Hour))
	if info, err := ParseCertificate(plain); err != nil || !info.Expires.IsZero() {
		t.Fatalf("a certificate without expiry: %+v, %v", info, err)
	}
	if _, err := k.CertificateExpiring([]string{"A"}, created, created.Add(-time.Hour)); err == nil {
		t.Fatal("an expiration before creation was accepted")
	}
	if _, err := ParseCertificate([]byte("junk")); err == nil {
		t.Fatal("ParseCertificate accepted junk")
	}
}
