package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/servertest"
	"github.com/signet-project/signet/internal/testenv"
)

type result struct {
	code           int
	stdout, stderr string
}

// signet runs the CLI in-process with stdin as standard input.
func signet(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (r result) ok(t *testing.T, what string) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	return r
}

func TestCLI(t *testing.T) {
	t.Parallel() // TestCLI and the scripts each have servers of their own
	e := servertest.New(t)
	rootCfg, aliceCfg, bobCfg := e.ConfigFile("root"), e.ConfigFile("alice"), e.ConfigFile("bob")
	dir := t.TempDir()

	r := signet(t, servertest.RootPW+"\x00", "-c", rootCfg, "--batch", "list-users").ok(t, "list-users")
	if r.stdout != "alice\nbob\nroot\n" {
		t.Fatalf("list-users printed %q", r.stdout)
	}
	r = signet(t, servertest.RootPW+"\x00", "-c", rootCfg, "--batch", "list-keys").ok(t, "list-keys")
	if !strings.HasPrefix(r.stdout, "fedora (") {
		t.Fatalf("list-keys printed %q", r.stdout)
	}
	// new-user --admin asks for the admin password, then (once, in batch
	// mode) the new user's password.
	signet(t, servertest.RootPW+"\x00carol pw\x00", "-c", rootCfg, "--batch", "new-user", "--admin", "carol").ok(t, "new-user")
	r = signet(t, "carol pw\x00", "-c", rootCfg, "-u", "carol", "--batch", "user-info", "carol")
	// root's certificate names root, not carol: the server refuses.
	if r.code == 0 || !strings.Contains(r.stderr, "signet: Error: Authentication failed (AUTHENTICATION_FAILED)") {
		t.Fatalf("user-info with another user's certificate: %+v", r)
	}
	carolCfg := e.ConfigFile("carol")
	r = signet(t, "carol pw\x00", "-c", carolCfg, "--batch", "user-info", "carol").ok(t, "user-info")
	if r.stdout != "Administrator: yes\n" {
		t.Fatalf("user-info printed %q", r.stdout)
	}
	r = signet(t, servertest.RootPW+"\x00", "-c", rootCfg, "--batch", "user-info", "bob").ok(t, "user-info bob")
	if r.stdout != "Administrator: no\n" {
		t.Fatalf("user-info bob printed %q", r.stdout)
	}
	r = signet(t, servertest.RootPW+"\x00", "-c", rootCfg, "--batch", "key-user-info", "bob", "fedora").ok(t, "key-user-info")
	if r.stdout != "No access defined\n" {
		t.Fatalf("key-user-info printed %q", r.stdout)
	}

	// alice grants bob access: her passphrase, then bob's new one.
	signet(t, servertest.AlicePass+"\x00bob pass\x00", "-c", aliceCfg, "--batch", "grant-key-access", "fedora", "bob").ok(t, "grant-key-access")
	r = signet(t, servertest.RootPW+"\x00", "-c", rootCfg, "--batch", "key-user-info", "bob", "fedora").ok(t, "key-user-info")
	if r.stdout != "Access defined, key administrator: no\n" {
		t.Fatalf("key-user-info printed %q", r.stdout)
	}
	// bob's passphrase from a file (-f), his public key to stdout.
	ppFile := filepath.Join(dir, "bob.pass")
	// Not from a file others can read: the mode expected is said.
	os.WriteFile(ppFile, []byte("bob pass\n"), 0o644)
	os.Chmod(ppFile, 0o644)
	if r := signet(t, "", "-c", bobCfg, "-f", ppFile, "get-public-key", "fedora"); r.code == 0 || !strings.Contains(r.stderr, "mode 0644") || !strings.Contains(r.stderr, "0600") {
		t.Fatalf("a passphrase file of mode 0644 was read: exit %d, %s", r.code, r.stderr)
	}
	os.Chmod(ppFile, 0o600)
	r = signet(t, "", "-c", bobCfg, "-f", ppFile, "get-public-key", "fedora").ok(t, "get-public-key")
	cert := []byte(r.stdout)
	if !bytes.HasPrefix(cert, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		t.Fatalf("get-public-key printed %q", r.stdout)
	}

	data := bytes.Repeat([]byte("signet data\x00\xff\n"), 50000)
	input := filepath.Join(dir, "input.bin")
	os.WriteFile(input, data, 0o644)
	for _, armor := range []bool{false, true} {
		out := filepath.Join(dir, "input.sig")
		args := []string{"-c", bobCfg, "--batch", "sign-data", "-o", out}
		if armor {
			args = append(args, "--armor")
		}
		signet(t, "bob pass\x00", append(args, "fedora", input)...).ok(t, "sign-data")
		sig, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if armored := bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----")); armored != armor {
			t.Fatalf("armor %v: signature starts %q", armor, sig[:min(20, len(sig))])
		}
		servertest.GPGVerify(t, cert, sig, data)
		os.Remove(out)
	}
	// sign-text to standard output (-a style short options work too).
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte("signet was here\n"), 0o644)
	r = signet(t, "bob pass\x00", "-c", bobCfg, "--batch", "sign-text", "fedora", text).ok(t, "sign-text")
	servertest.GPGVerify(t, cert, []byte(r.stdout), nil)

	// A wrong passphrase: non-zero exit, Sigul's error text, no output file.
	outDir := t.TempDir()
	out := filepath.Join(outDir, "wrong.sig")
	r = signet(t, "wrong\x00", "-c", bobCfg, "--batch", "sign-data", "-a", "-o", out, "fedora", input)
	if r.code != 1 || r.stderr != "signet: Error: Authentication failed (AUTHENTICATION_FAILED)\n" || r.stdout != "" {
		t.Fatalf("wrong passphrase: %+v", r)
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
		t.Fatalf("wrong passphrase left %d files", len(ents))
	}
	// Replies changed on their way: integrity error, no output file, and
	// nothing on standard output without -o.
	for name, at := range map[string]int64{"header": 1, "payload": 4 + 1 + 64 + 8 + 3} {
		e.Relay.SetTamper(servertest.FlipAt(at))
		r = signet(t, "bob pass\x00", "-c", bobCfg, "--batch", "sign-data", "-o", out, "fedora", input)
		r2 := signet(t, "bob pass\x00", "-c", bobCfg, "--batch", "sign-data", "-a", "fedora", input)
		e.Relay.SetTamper(nil)
		for _, r := range []result{r, r2} {
			if r.code != 1 || !strings.Contains(r.stderr, "integrity check") || r.stdout != "" {
				t.Fatalf("%s changed: %+v", name, r)
			}
		}
		if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
			t.Fatalf("%s changed: %d files left", name, len(ents))
		}
	}
	// --batch input that ends before the NUL: a failure, nothing sent.
	r = signet(t, "no terminator", "-c", rootCfg, "--batch", "list-users")
	if r.code != 1 || !strings.Contains(r.stderr, "unexpected end of input") {
		t.Fatalf("unterminated batch input: %+v", r)
	}
	// Revocation by an administrator with --password.
	signet(t, servertest.RootPW+"\x00", "-c", rootCfg, "--batch", "revoke-key-access", "--password", "fedora", "bob").ok(t, "revoke")
	r = signet(t, servertest.AlicePass+"\x00", "-c", aliceCfg, "--batch", "list-key-users", "fedora").ok(t, "list-key-users")
	if r.stdout != "alice\n" {
		t.Fatalf("list-key-users printed %q", r.stdout)
	}
	// change-key-expiration by the key administrator.
	signet(t, servertest.AlicePass+"\x00", "-c", aliceCfg, "--batch", "change-key-expiration", "--expire-date", "2030-01-02", "fedora").ok(t, "change-key-expiration")
}

func TestCLIUsage(t *testing.T) {
	root := (&app{}).rootCommand()
	for _, c := range root.Commands() {
		r := signet(t, "", c.Name(), "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "--user-name") {
			t.Fatalf("%s --help: %+v", c.Name(), r)
		}
	}
	if r := signet(t, "", "--help"); r.code != 0 || !strings.Contains(r.stdout, "sign-data") {
		t.Fatalf("--help: %+v", r)
	}
	if r := signet(t, "", "--help-commands"); r.code != 0 || !strings.Contains(r.stdout, "grant-key-access") {
		t.Fatalf("--help-commands: %+v", r)
	}
	for _, args := range [][]string{
		{}, {"no-such-command"}, {"sign-data", "onlykey"}, {"list-users", "extra"},
		{"sign-data", "--no-such-flag", "k", "f"}, {"modify-user", "bob"}, {"modify-user", "--admin", "maybe", "bob"},
		{"change-key-expiration", "--expire-date", "2024-02-30", "k"},
	} {
		if r := signet(t, "", args...); r.code != 2 || r.stdout != "" {
			t.Fatalf("%q: exit %d, want 2: %+v", args, r.code, r)
		}
	}
	// A missing configuration file is a failure (1), reported.
	r := signet(t, "", "-c", filepath.Join(t.TempDir(), "none.toml"), "list-users")
	if r.code != 1 || !strings.Contains(r.stderr, "configuration") {
		t.Fatalf("missing config: %+v", r)
	}
	// Shell completion (cobra's).
	if r := signet(t, "", "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "signet") {
		t.Fatalf("completion bash: exit %d", r.code)
	}
}

// TestBinaryExitStatus runs the built command as a process: the exit
// status is what scripts see.
func TestBinaryExitStatus(t *testing.T) {
	testenv.SkipShort(t, "builds and runs signet as a process")
	bin := filepath.Join(t.TempDir(), "signet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	e := servertest.New(t)
	cfg := e.ConfigFile("root")
	cmd := exec.Command(bin, "-c", cfg, "--batch", "list-users")
	cmd.Stdin = strings.NewReader(servertest.RootPW + "\x00")
	out, err := cmd.Output()
	if err != nil || string(out) != "alice\nbob\nroot\n" {
		t.Fatalf("list-users: %v, %q", err, out)
	}
	cmd = exec.Command(bin, "-c", cfg, "--batch", "list-users")
	cmd.Stdin = strings.NewReader("wrong\x00")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 ||
		stderr.String() != "signet: Error: Authentication failed (AUTHENTICATION_FAILED)\n" {
		t.Fatalf("wrong password: %v, %q", err, stderr.String())
	}
}
