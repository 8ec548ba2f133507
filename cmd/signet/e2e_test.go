package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEndToEnd runs the real signet-bridge and signet-server processes that
// scripts/devstack.sh starts (real TLS on 127.0.0.1, a SoftHSM2 token) and
// drives them with the real signet binary, as a release engineer would.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and starts the whole stack")
	}
	s := startStack(t)
	dir, env := s.dir, s.env
	adminPW, alicePass := s.adminPW, s.alicePass
	signet := func(as string, secrets []string, args ...string) invocation {
		t.Helper()
		return s.signet(t, as, secrets, args...)
	}
	ok := func(r invocation, what string) invocation {
		t.Helper()
		return s.ok(t, r, what)
	}
	fails := func(r invocation, what, want string) {
		t.Helper()
		s.fails(t, r, what, want)
	}

	// The signing operations of the package and Secure Boot issues, on
	// the same stack (each subtest leaves the keys and passphrases as it
	// found them).
	t.Run("rpm", func(t *testing.T) { testRPMs(t, s) })
	t.Run("openpgp", func(t *testing.T) { testOpenPGPOps(t, s) })
	t.Run("secureboot", func(t *testing.T) { testSecureBoot(t, s) })

	// Administration.
	if out := ok(signet("admin", []string{adminPW}, "list-users"), "list-users").stdout; out != "admin\nalice\n" {
		t.Fatalf("list-users = %q", out)
	}
	ok(signet("admin", []string{adminPW}, "new-user", "bob"), "new-user bob")
	ok(signet("admin", []string{adminPW}, "user-info", "bob"), "user-info bob")
	fails(signet("admin", []string{adminPW}, "new-user", "bob"), "new-user twice", "ALREADY_EXISTS")
	fails(signet("admin", []string{"wrong"}, "list-users"), "wrong password", "AUTHENTICATION_FAILED")
	fails(signet("admin", []string{adminPW}, "delete-key", "no-such-key"), "delete-key of an unknown key", "KEY_NOT_FOUND")
	if out := ok(signet("admin", []string{adminPW}, "list-keys"), "list-keys").stdout; !strings.Contains(out, "demo-rsa") {
		t.Fatalf("list-keys = %q", out)
	}
	fails(signet("admin", []string{adminPW, "x"}, "new-key", "--key-type", "RSA", "k2"), "new-key on a server without a PIN", "signet-server key generate")

	// alice (key admin) grants bob; bob signs; alice revokes; bob is refused.
	ok(signet("alice", []string{alicePass, "bob pass"}, "grant-key-access", "demo-rsa", "bob"), "grant-key-access")
	if out := ok(signet("alice", []string{alicePass}, "list-key-users", "demo-rsa"), "list-key-users").stdout; out != "alice\nbob\n" {
		t.Fatalf("list-key-users = %q", out)
	}
	os.WriteFile(filepath.Join(dir, "data"), []byte("end-to-end payload\n"), 0o600)
	pub := ok(signet("alice", []string{alicePass}, "get-public-key", "demo-rsa"), "get-public-key").stdout
	// bob has no certificate of his own in the devstack: he connects with
	// alice's and is refused by the CN check, as the protocol requires.
	fails(signet("alice", []string{"bob pass"}, "-u", "bob", "sign-data", "-o", "bob.sig", "demo-rsa", "data"), "bob with alice's certificate", "")
	if _, err := os.Stat(filepath.Join(dir, "bob.sig")); err == nil {
		t.Fatal("a refused request left an output file")
	}
	ok(signet("alice", []string{alicePass}, "sign-data", "-a", "-o", "data.asc", "demo-rsa", "data"), "sign-data")
	ok(signet("alice", []string{alicePass}, "sign-text", "-o", "data.clear", "demo-rsa", "data"), "sign-text")
	verifyWithGPG(t, dir, []byte(pub), "data.asc", "data")
	verifyWithGPG(t, dir, []byte(pub), "data.clear", "")
	// sq (Sequoia) agrees.
	os.WriteFile(filepath.Join(dir, "demo-rsa.asc"), []byte(pub), 0o600)
	for _, args := range [][]string{
		{"verify", "--signer-cert", "demo-rsa.asc", "--detached", "data.asc", "data"},
		{"verify", "--signer-cert", "demo-rsa.asc", "data.clear"},
	} {
		cmd := exec.Command("sq", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sq %v: %v\n%s", args, err, out)
		}
	}
	// A user whose access was revoked is refused like anyone else.
	ok(signet("alice", []string{alicePass, "admin key pass"}, "grant-key-access", "demo-rsa", "admin"), "grant-key-access to admin")
	ok(signet("admin", []string{"admin key pass"}, "sign-data", "-o", "admin.sig", "demo-rsa", "data"), "sign-data by admin")
	ok(signet("alice", []string{alicePass}, "revoke-key-access", "demo-rsa", "admin"), "revoke-key-access of admin")
	fails(signet("admin", []string{"admin key pass"}, "sign-data", "-o", "admin2.sig", "demo-rsa", "data"), "sign-data by a revoked user", "AUTHENTICATION_FAILED")
	fails(signet("alice", []string{"wrong"}, "sign-data", "-o", "x.sig", "demo-rsa", "data"), "wrong passphrase", "AUTHENTICATION_FAILED")
	fails(signet("alice", []string{alicePass}, "sign-data", "-o", "x.sig", "no-such-key", "data"), "unknown key", "AUTHENTICATION_FAILED")
	if _, err := os.Stat(filepath.Join(dir, "x.sig")); err == nil {
		t.Fatal("a refused request left an output file")
	}
	ok(signet("alice", []string{alicePass, "alice new"}, "change-passphrase", "demo-rsa"), "change-passphrase")
	fails(signet("alice", []string{alicePass}, "sign-data", "-o", "x.sig", "demo-rsa", "data"), "old passphrase", "AUTHENTICATION_FAILED")
	ok(signet("alice", []string{"alice new"}, "change-key-expiration", "--expire-date", "2030-12-31", "demo-rsa"), "change-key-expiration")
	ok(signet("alice", []string{"alice new"}, "revoke-key-access", "demo-rsa", "bob"), "revoke-key-access")
	fails(signet("alice", []string{"alice new"}, "revoke-key-access", "demo-rsa", "alice"), "revoking the last access", "ONLY_ONE_KEY_USER")
	ok(signet("admin", []string{adminPW}, "delete-user", "bob"), "delete-user bob")

	// The bridge restarts while requests run: the server reconnects on its
	// own and requests succeed again within 5 seconds; no client ever gets
	// an unverified reply (a failure is an error, never a bad signature).
	restartBridge(t, dir, env)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := signet("alice", []string{"alice new"}, "sign-data", "-a", "-o", "after.asc", "demo-rsa", "data")
		if r.code == 0 {
			break
		}
		if strings.Contains(r.stderr, "integrity") || strings.Contains(r.stderr, "does not verify") {
			t.Fatalf("a client received a corrupted reply: %s", r.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request succeeded within 5 s of the bridge restart: %s", r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	verifyWithGPG(t, dir, []byte(pub), "after.asc", "data")

	// The server's audit chain holds every request.
	cmd := exec.Command(filepath.Join(dir, "bin/signet-server"), "--config", filepath.Join(dir, "server.toml"), "audit", "verify")
	cmd.Env = append(env, "SOFTHSM2_CONF="+filepath.Join(dir, "token/softhsm2.conf"))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "audit chain OK") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

// restartBridge stops the devstack's bridge and starts it again with the
// same configuration, as an operator's restart would.
func restartBridge(t *testing.T, dir string, env []string) {
	t.Helper()
	pidFile := filepath.Join(dir, "run/bridge.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	p.Signal(os.Interrupt)
	for i := 0; i < 100 && p.Signal(syscall.Signal(0)) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if p.Signal(syscall.Signal(0)) == nil {
		t.Fatalf("the bridge (pid %d) did not stop within 5 s of SIGINT", pid)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "log/bridge.log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(dir, "bin/signet-bridge"), "--config", filepath.Join(dir, "bridge.toml"), "run")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pidFile, []byte(fmt.Sprint(cmd.Process.Pid)), 0o644)
	go cmd.Wait()
}

// verifyWithGPG checks sigFile (over dataFile, or a cleartext message when
// dataFile is "") with gpg in a throwaway home holding cert.
func verifyWithGPG(t *testing.T, dir string, cert []byte, sigFile, dataFile string) {
	t.Helper()
	home, err := os.MkdirTemp(dir, "gnupg")
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	gpg := func(args ...string) ([]byte, error) {
		cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...)
		cmd.Dir = dir
		cmd.Stdin = bytes.NewReader(cert)
		return cmd.CombinedOutput()
	}
	if out, err := gpg("--import"); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	args := []string{"--verify", sigFile}
	if dataFile != "" {
		args = append(args, dataFile)
	}
	if out, err := gpg(args...); err != nil || !bytes.Contains(out, []byte("Good signature")) {
		t.Fatalf("gpg --verify %s: %v\n%s", sigFile, err, out)
	}
}
