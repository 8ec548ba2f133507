package interop

// The unmodified Sigul 1.2 client (client.py) against signet's bridge and
// server: every command in client.py's command list, each output checked
// by the ecosystem's verifier (gpg, rpmkeys, sbverify, openssl, git,
// skopeo, ostree). The subtests are in sigulclient_*_test.go.

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sc runs Sigul's client against the package's devstack.
type sc struct {
	s   *signetStack
	dir string // the test's working directory

	mu     sync.Mutex
	worked map[string]bool // client.py commands that succeeded at least once
}

func TestSigulClient(t *testing.T) {
	c := &sc{s: signet(t), dir: t.TempDir(), worked: map[string]bool{}}
	sigulTree(t)
	t.Run("Admin", c.testAdmin)
	t.Run("NewKeyExpiry", c.testNewKeyExpiry)
	t.Run("OpenPGP", c.testOpenPGP)
	t.Run("SignRPM", c.testSignRPM)
	t.Run("BatchWithCorruptPackage", c.testBatchCorrupt)
	t.Run("HeadSigning", c.testHeadSigning)
	t.Run("FileSigning", c.testFileSigning)
	t.Run("Certificates", c.testCertificates)
	t.Run("SignPE", c.testSignPE)
	t.Run("BindingMethods", c.testBindingMethods)

	// Every command of client.py's list has worked at least once, unless
	// -run chose only some subtests.
	if f := flag.Lookup("test.run"); f != nil && strings.Contains(f.Value.String(), "/") {
		return
	}
	var missing []string
	for _, cmd := range clientCommands(t) {
		if !c.worked[cmd] {
			missing = append(missing, cmd)
		}
	}
	if len(missing) > 0 {
		t.Errorf("client.py commands that never succeeded against signet: %s", strings.Join(missing, ", "))
	}
}

// clientCommands reads client.py's command list (command_handlers).
func clientCommands(t testing.TB) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(thirdParty(t), "sigul/src/client.py"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(src), "\ncommand_handlers = {")
	if !ok {
		t.Fatal("client.py has no command_handlers table")
	}
	table, _, _ = strings.Cut(table, "\n}")
	var cmds []string
	for _, m := range regexp.MustCompile(`'([a-z-]+)': \(cmd_`).FindAllStringSubmatch(table, -1) {
		cmds = append(cmds, m[1])
	}
	if len(cmds) < 25 {
		t.Fatalf("read only %d commands from client.py's command_handlers: %v", len(cmds), cmds)
	}
	slices.Sort(cmds)
	return cmds
}

// run runs Sigul's client as user (admin or alice) with secrets, in dir
// (the test's directory when empty).
func (c *sc) run(t testing.TB, dir, user string, secrets []string, args ...string) result {
	t.Helper()
	if dir == "" {
		dir = c.dir
	}
	return sigulClient(t, dir, c.s.sigulConf(t, user), secrets, args...)
}

// alice runs Sigul's client as alice with her passphrase (that of every
// devstack key).
func (c *sc) alice(t testing.TB, args ...string) result {
	t.Helper()
	return c.run(t, "", "alice", []string{c.s.alicePass}, args...)
}

// admin runs Sigul's client as admin with the administrator's password.
func (c *sc) admin(t testing.TB, args ...string) result {
	t.Helper()
	return c.run(t, "", "admin", []string{c.s.adminPW}, args...)
}

// ok fails the test unless r is a success; it records the command (the
// first argument that is not an option of the client itself) as working.
func (c *sc) ok(t testing.TB, r result, args ...string) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("sigul %s: %v", strings.Join(args, " "), r)
	}
	if len(args) > 0 {
		c.mu.Lock()
		c.worked[args[0]] = true
		c.mu.Unlock()
	}
	return r
}

// fails fails the test unless r is a failure whose output names want.
func fails(t testing.TB, r result, what, want string) {
	t.Helper()
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, want) {
		t.Fatalf("%s: want a failure naming %q; got %v", what, want, r)
	}
}

// path names a file in the test's directory.
func (c *sc) path(name string) string { return filepath.Join(c.dir, name) }

func (c *sc) write(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := c.path(name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gpgHome makes a keyring holding the armored public keys given, for
// gpg --verify; its agent is stopped when the test ends.
func gpgHome(t testing.TB, keys ...[]byte) (home string, env []string) {
	t.Helper()
	needTools(t, "gpg", "gpgconf")
	home = t.TempDir()
	os.Chmod(home, 0o700)
	env = []string{"GNUPGHOME=" + home}
	t.Cleanup(func() { execute(t, "", env, nil, "gpgconf", "--kill", "all") })
	for i, k := range keys {
		f := filepath.Join(home, "import"+string(rune('a'+i))+".asc")
		if err := os.WriteFile(f, k, 0o600); err != nil {
			t.Fatal(err)
		}
		tool(t, home, env, "gpg", "--batch", "--import", f)
	}
	return home, env
}

// gpgVerify fails the test unless gpg reports a good signature.
func gpgVerify(t testing.TB, env []string, args ...string) {
	t.Helper()
	out := tool(t, "", env, "gpg", append([]string{"--batch", "--status-fd", "1", "--verify"}, args...)...)
	if !strings.Contains(out, "[GNUPG:] GOODSIG") || !strings.Contains(out, "[GNUPG:] VALIDSIG") {
		t.Fatalf("gpg --verify %v: no good signature:\n%s", args, out)
	}
}

// fingerprint returns the primary key fingerprint of an armored public
// key, as gpg reads it.
func fingerprint(t testing.TB, key []byte) string {
	t.Helper()
	_, env := gpgHome(t, key)
	out := tool(t, "", env, "gpg", "--batch", "--with-colons", "--list-keys")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "fpr:") {
			f := strings.Split(l, ":")
			return f[9]
		}
	}
	t.Fatalf("no fingerprint in:\n%s", out)
	return ""
}
