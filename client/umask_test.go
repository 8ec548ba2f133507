package client_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/internal/testpki"
)

// TestWriteFileAtomicUmask: the mode asked for, less the umask, as
// os.WriteFile does; 0600 stays 0600. The test runs itself again under
// sh with a known umask.
func TestWriteFileAtomicUmask(t *testing.T) {
	if dir := os.Getenv("SIGNET_UMASK_HELPER"); dir != "" {
		for _, perm := range []os.FileMode{0o644, 0o600} {
			p := filepath.Join(dir, fmt.Sprintf("%o", perm))
			if err := client.WriteFileAtomic(p, perm, func(w io.Writer) error { _, err := w.Write([]byte("x")); return err }); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for umask, want := range map[string][2]os.FileMode{"027": {0o640, 0o600}, "022": {0o644, 0o600}, "077": {0o600, 0o600}, "000": {0o644, 0o600}} {
		dir := t.TempDir()
		cmd := exec.Command("sh", "-c", "umask "+umask+" && exec \"$0\" -test.run='^TestWriteFileAtomicUmask$'", os.Args[0])
		cmd.Env = append(os.Environ(), "SIGNET_UMASK_HELPER="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("umask %s: %v\n%s", umask, err, out)
		}
		for i, name := range []string{"644", "600"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("umask %s: %v", umask, err)
			}
			if fi.Mode().Perm() != want[i] {
				t.Errorf("umask %s, mode %s: got %v, want %v", umask, name, fi.Mode().Perm(), want[i])
			}
		}
	}
}

// TestClientKeyMode: a client key others can read is refused.
func TestClientKeyMode(t *testing.T) {
	dir := t.TempDir()
	pki := testpki.New(t, "CA")
	c := pki.MustIssue(t, testpki.Leaf{CN: "alice", EKU: testpki.Client})
	cert, key, ca := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key"), filepath.Join(dir, "ca.pem")
	if err := c.Write(cert, key); err != nil {
		t.Fatal(err)
	}
	pki.WriteCert(ca)
	cfg := &client.Config{BridgeHost: "localhost", BridgePort: 1, ServerHost: "server", UserName: "alice", CAFile: ca, CertFile: cert, KeyFile: key}
	if _, err := client.New(cfg); err != nil {
		t.Fatal(err)
	}
	os.Chmod(key, 0o640)
	if _, err := client.New(cfg); err == nil || !strings.Contains(err.Error(), "mode 0640") {
		t.Fatalf("a client key of mode 0640: %v", err)
	}
}
