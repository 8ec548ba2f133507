package client_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/signet-project/signet/client"
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
