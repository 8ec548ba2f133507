package secret

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadFileModes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pin")
	if err := os.WriteFile(p, []byte("123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range []os.FileMode{0o600, 0o400} {
		os.Chmod(p, m)
		b, err := ReadFile(p, "token PIN")
		if err != nil || string(b) != "123456" {
			t.Fatalf("mode %04o: %q, %v", m, b, err)
		}
	}
	for _, m := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o620, 0o601} {
		os.Chmod(p, m)
		b, err := ReadFile(p, "token PIN")
		if err == nil || b != nil {
			t.Fatalf("mode %04o: read %q", m, b)
		}
		for _, want := range []string{"token PIN file " + p, "mode 0", "mode 0600 or 0400"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mode %04o: %q does not say %q", m, err, want)
			}
		}
		if strings.Contains(err.Error(), "123456") {
			t.Fatal("the error holds the secret")
		}
	}
}

// TestHarden runs itself again: after Harden the process is not dumpable
// and may write no core file.
func TestHarden(t *testing.T) {
	if os.Getenv("SIGNET_HARDEN_HELPER") != "" {
		if err := Harden(); err != nil {
			t.Fatal(err)
		}
		d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		var rl unix.Rlimit
		if gerr := unix.Getrlimit(unix.RLIMIT_CORE, &rl); err != nil || gerr != nil || d != 0 || rl.Cur != 0 || rl.Max != 0 {
			t.Fatalf("after Harden: dumpable %d (%v), RLIMIT_CORE %d/%d (%v)", d, err, rl.Cur, rl.Max, gerr)
		}
		return
	}
	// The test process itself is dumpable: the check can fail.
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 1 {
		t.Skipf("the test process is not dumpable to begin with (%d, %v)", d, err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHarden$", "-test.v")
	cmd.Env = append(os.Environ(), "SIGNET_HARDEN_HELPER=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("helper: %v\n%s", err, out)
	}
}

func TestReadNUL(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("first\x00\x00third"))
	for _, want := range []string{"first", ""} {
		b, err := ReadNUL(r)
		if err != nil || string(b) != want {
			t.Fatalf("ReadNUL = %q, %v; want %q", b, err, want)
		}
	}
	if _, err := ReadNUL(r); err != ErrNoNUL {
		t.Fatalf("without a NUL: %v", err)
	}
	if _, err := ReadNUL(bufio.NewReader(strings.NewReader(strings.Repeat("x", maxLen+1) + "\x00"))); err == nil {
		t.Fatal("an overlong secret was read")
	}
}
