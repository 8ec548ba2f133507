package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/testenv"
)

// stack is a running devstack (scripts/devstack.sh): real signet-bridge
// and signet-server processes on 127.0.0.1 with a SoftHSM2 token, driven
// with the real signet binary.
type stack struct {
	root, dir string
	env       []string
	// adminPW is admin's password; alicePass alice's passphrase for
	// every devstack key.
	adminPW, alicePass string
}

// invocation is one signet invocation's outcome.
type invocation struct {
	stdout, stderr string
	code           int
}

// startStack runs devstack.sh up in a temporary directory, with extra
// environment settings (SIGNET_KOJI_*, ...), and down when t ends.
func startStack(t *testing.T, extraEnv ...string) *stack {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{root: root, dir: t.TempDir()}
	ports := testenv.FreePorts(t, 3)
	s.env = append(os.Environ(), "SIGNET_CLIENT_PORT="+strconv.Itoa(ports[0]), "SIGNET_SERVER_PORT="+strconv.Itoa(ports[1]), "SIGNET_METRICS_PORT="+strconv.Itoa(ports[2]))
	s.env = append(s.env, extraEnv...)
	s.devstack(t, "up")
	t.Cleanup(func() { s.devstack(t, "down") })
	s.adminPW, s.alicePass = s.secret(t, "admin-password"), s.secret(t, "alice-passphrase")
	return s
}

func (s *stack) devstack(t *testing.T, action string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(s.root, "scripts/devstack.sh"), action, s.dir)
	cmd.Env = s.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("devstack.sh %s: %v\n%s", action, err, out)
	}
}

func (s *stack) secret(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "secrets", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// path names a file in the stack's directory, where signet runs.
func (s *stack) path(name string) string { return filepath.Join(s.dir, name) }

// signet runs the client as user as (admin or alice) in batch mode, with
// secrets on standard input, in the stack's directory. It fails the test
// if a secret appears in the output.
func (s *stack) signet(t *testing.T, as string, secrets []string, args ...string) invocation {
	t.Helper()
	cmd := exec.Command(filepath.Join(s.dir, "bin/signet"), append([]string{"-c", filepath.Join(s.dir, as+".toml"), "--batch"}, args...)...)
	cmd.Dir = s.dir
	var in bytes.Buffer
	for _, sec := range secrets {
		in.WriteString(sec)
		in.WriteByte(0)
	}
	cmd.Stdin = &in
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets {
		if sec != "" && (strings.Contains(out.String(), sec) || strings.Contains(errb.String(), sec)) {
			t.Fatalf("signet %v printed a secret", args)
		}
	}
	return invocation{out.String(), errb.String(), code}
}

// alice runs signet as alice with her passphrase.
func (s *stack) alice(t *testing.T, args ...string) invocation {
	t.Helper()
	return s.signet(t, "alice", []string{s.alicePass}, args...)
}

func (s *stack) ok(t *testing.T, r invocation, what string) invocation {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d: %s", what, r.code, r.stderr)
	}
	return r
}

func (s *stack) fails(t *testing.T, r invocation, what, want string) {
	t.Helper()
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("%s: exit %d, stderr %q; want a failure naming %q", what, r.code, r.stderr, want)
	}
}

// publicKey fetches key's public key (an armored OpenPGP certificate or a
// PEM public key) through the service.
func (s *stack) publicKey(t *testing.T, key string) []byte {
	t.Helper()
	return []byte(s.ok(t, s.alice(t, "get-public-key", key), "get-public-key "+key).stdout)
}

// absent fails the test if the stack's directory holds name.
func (s *stack) absent(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Stat(s.path(name)); err == nil {
		t.Fatalf("a refused request left %s behind", name)
	}
}
