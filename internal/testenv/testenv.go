// Package testenv is the one rule for tests that need something from
// outside Go: a tool on PATH (gpg, rpmkeys, sbverify, ...), firmware, a
// download. When it is missing, the test fails under CI=true, where
// scripts/install-deps.sh has installed everything, and is skipped
// elsewhere, with a message that says what is missing.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI (the environment variable CI is
// "true"), where nothing may be missing.
func InCI() bool { return os.Getenv("CI") == "true" }

// MustHave checks that every tool is on PATH. For the first one missing it
// fails t under CI=true and skips it otherwise.
func MustHave(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Unavailable(t, "%s is not installed (scripts/install-deps.sh installs it): %v", tool, err)
			return
		}
	}
}

// Has reports whether tool is on PATH, for a test that checks more when a
// tool is there and still checks something without it. Under CI=true a
// missing tool fails t (and Has returns false); otherwise the absence is
// logged.
func Has(t testing.TB, tool string) bool {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		msg := fmt.Sprintf("%s is not installed (scripts/install-deps.sh installs it): %v", tool, err)
		if InCI() {
			t.Error(msg)
		} else {
			t.Log(msg + "; the checks that need it are left out")
		}
		return false
	}
	return true
}

// SkipShort skips t under go test -short: the fast loop leaves out what
// starts QEMU, RabbitMQ, PostgreSQL or signet's own programs as
// processes. what says which.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s: not with -short", what)
	}
}

// Unavailable ends t because something it needs is missing: it fails
// under CI=true and skips otherwise.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf(format, args...)
		return
	}
	t.Skipf(format, args...)
}

// Run runs a program (a verifier such as rpmkeys, sbverify or gpg, or a
// tool such as openssl) in dir with env added to the test's environment,
// and fails t unless it exits 0. It returns the combined output.
func Run(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ShortGPGAgent makes the gpg-agent of the GNUPGHOME home, which must not
// have started yet, protect secret keys with the smallest iterated S2K
// count (65536) under go test -short. gpg-agent otherwise calibrates the
// count to about 100 ms of hashing and, on a fast machine, reaches the
// largest one OpenPGP can encode (65011712), which every protect, unprotect
// and export of a key then costs; the full run keeps that default.
func ShortGPGAgent(t testing.TB, home string) {
	t.Helper()
	if !testing.Short() {
		return
	}
	conf := filepath.Join(home, "gpg-agent.conf")
	if err := os.WriteFile(conf, []byte("s2k-count 65536\n"), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
