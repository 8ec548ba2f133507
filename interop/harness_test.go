package interop

// The harness every interop test shares.
//
//   - thirdParty: ../shared/third-party beside the repository (Sigul 1.2's
//     unmodified sources and sigul-stack.sh). Absent: the test is skipped
//     with a message saying so. Present but incomplete or failing: the test
//     fails.
//   - needTools: a program or Python module a test needs; missing fails the
//     test under CI=true and skips it otherwise (internal/testenv).
//   - signet: one devstack (scripts/devstack.sh: real signet-bridge and
//     signet-server processes, SoftHSM2 token) for the whole package,
//     started on first use on free ports and stopped after the last test.
//   - sigulClient: Sigul's own client (sigul-stack.sh pytree), run with
//     Debian's /usr/bin/python3, with an NSS database made from the
//     devstack's CA and user certificates and an INI configuration, so that
//     it talks to signet.
//   - sigul: a real Sigul bridge and server (sigul-stack.sh up/down) on
//     free ports, shared by the package; signetBinary and
//     sigulStack.signetClient run signet's client against it.
//
// Shared stacks live until TestMain ends; tests that change them use names
// of their own.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// commandTimeout bounds every program a test runs; none should come near
// it, it only keeps a hung process from holding CI.
const commandTimeout = 10 * time.Minute

var pkg struct {
	mu       sync.Mutex
	tmp      string   // removed when the package's tests end
	cleanups []func() // run in reverse order when the package's tests end

	signet    *signetStack
	signetErr error

	pytree    string
	pytreeErr error

	sigul    *sigulStack
	sigulErr error

	signetBin    string
	signetBinErr error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(pkg.cleanups) - 1; i >= 0; i-- {
		pkg.cleanups[i]()
	}
	if pkg.tmp != "" {
		os.RemoveAll(pkg.tmp)
	}
	os.Exit(code)
}

// pkgDir makes a directory that lives until the package's tests end.
// Callers hold pkg.mu.
func pkgDir(name string) (string, error) {
	if pkg.tmp == "" {
		d, err := os.MkdirTemp("", "signet-interop-")
		if err != nil {
			return "", err
		}
		pkg.tmp = d
	}
	d := filepath.Join(pkg.tmp, name)
	return d, os.MkdirAll(d, 0o755)
}

// repoRoot is the repository's top directory (tests run in interop/).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// thirdParty returns ../shared/third-party beside the repository. It skips
// the test when that folder is absent (a user's fresh clone) and fails it
// when the folder is there but lacks what the tests run. Every interop
// test calls it first; under -short (the fast loop) it skips them all.
func thirdParty(t testing.TB) string {
	t.Helper()
	testenv.SkipShort(t, "interop tests start signet's and Sigul's programs as processes")
	dir := filepath.Join(filepath.Dir(repoRoot(t)), "shared", "third-party")
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		t.Skipf("interop: %s is absent: these tests need Sigul 1.2's sources and sigul-stack.sh there (../shared beside the repository)", dir)
	} else if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"sigul-stack.sh", "sigul/src/client.py", "sigul/src/bridge.py", "sigul/src/server.py", "rpm-head-signing/setup.py", "koji/koji/__init__.py"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("interop: %s is present but broken: %v", dir, err)
		}
	}
	return dir
}

// needTools checks for programs (on PATH, or absolute paths) and, for
// names "python3:MODULE", modules of Debian's /usr/bin/python3, with the
// project's rule (internal/testenv): missing fails under CI=true and skips
// otherwise.
func needTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		var err error
		if mod, ok := strings.CutPrefix(tool, "python3:"); ok {
			err = exec.Command("/usr/bin/python3", "-c", "import "+mod).Run()
		} else {
			_, err = exec.LookPath(tool)
		}
		if err != nil {
			testenv.Unavailable(t, "%s is missing (scripts/install-deps.sh installs it): %v", tool, err)
		}
	}
}

// sigulTools are what Sigul's client needs, and the NSS tools that make
// its database.
var sigulTools = []string{"/usr/bin/python3", "python3:nss.nss", "python3:six", "python3:cryptography", "python3:rpm", "certutil", "pk12util", "openssl"}

// result is one program's outcome.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// execute runs name with args in dir (if not empty), with extra
// environment and secrets on standard input, each followed by a NUL, as
// batch mode reads them. It fails the test if it cannot start the program,
// if it runs past commandTimeout, or if a secret appears in its output.
func execute(t testing.TB, dir string, env []string, secrets []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	var in bytes.Buffer
	for _, s := range secrets {
		in.WriteString(s)
		in.WriteByte(0)
	}
	cmd.Stdin = &in
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after %v; killed\n%s", name, strings.Join(args, " "), commandTimeout, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, s := range secrets {
		if s != "" && (strings.Contains(out.String(), s) || strings.Contains(errb.String(), s)) {
			t.Fatalf("%s %s printed a secret", name, strings.Join(args, " "))
		}
	}
	return result{out.String(), errb.String(), code}
}

// tool runs a program (a verifier, git, openssl...) and fails the test
// unless it exits 0; it returns the combined output.
func tool(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	r := execute(t, dir, env, nil, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), r)
	}
	return r.stdout + r.stderr
}

// ---- signet's stack ----

// signetStack is a running devstack: signet-bridge and signet-server on
// 127.0.0.1, users admin and alice, alice's keys demo-rsa (gnupg,
// RSA-4096), demo-ed25519 (gnupg), demo-ima (ECC), demo-sb-ca, demo-sb
// (RSA) and demo-sb-ec (ECC) with the certificates "ca" on demo-sb-ca and
// "signer" on demo-sb and demo-sb-ec. The server holds the token PIN, so
// new-key and import-key work over the network.
type signetStack struct {
	dir                    string
	clientPort, serverPort int
	adminPW, alicePass     string
	env                    []string
	sigulConfs             map[string]string // user -> Sigul INI file, made on first use
	sigulConfErr           error
	sigulConfOnce          sync.Once
}

// signet returns the package's devstack, starting it on first use.
func signet(t testing.TB) *signetStack {
	t.Helper()
	thirdParty(t)
	needTools(t, "openssl", "softhsm2-util")
	pkg.mu.Lock()
	defer pkg.mu.Unlock()
	if pkg.signet == nil && pkg.signetErr == nil {
		pkg.signet, pkg.signetErr = startSignet(t)
	}
	if pkg.signetErr != nil {
		t.Fatalf("signet's devstack: %v", pkg.signetErr)
	}
	return pkg.signet
}

func startSignet(t testing.TB) (*signetStack, error) {
	dir, err := pkgDir("devstack")
	if err != nil {
		return nil, err
	}
	p := testenv.FreePorts(t, 3)
	s := &signetStack{dir: dir, clientPort: p[0], serverPort: p[1]}
	s.env = append(os.Environ(), "SIGNET_CLIENT_PORT="+strconv.Itoa(p[0]), "SIGNET_SERVER_PORT="+strconv.Itoa(p[1]),
		"SIGNET_METRICS_PORT="+strconv.Itoa(p[2]), "SIGNET_DEVSTACK_PIN=1")
	script := filepath.Join(repoRoot(t), "scripts/devstack.sh")
	devstack := func(action string) error {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, action, dir)
		cmd.Env = s.env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("devstack.sh %s: %v\n%s", action, err, out)
		}
		return nil
	}
	// Stop whatever started, even when up failed half-way.
	pkg.cleanups = append(pkg.cleanups, func() { devstack("down") })
	if err := devstack("up"); err != nil {
		return nil, err
	}
	for name, dst := range map[string]*string{"admin-password": &s.adminPW, "alice-passphrase": &s.alicePass} {
		b, err := os.ReadFile(filepath.Join(dir, "secrets", name))
		if err != nil {
			return nil, err
		}
		*dst = strings.TrimSpace(string(b))
	}
	return s, nil
}

// path names a file in the devstack's directory.
func (s *signetStack) path(name string) string { return filepath.Join(s.dir, name) }

// sigulConf returns the Sigul client configuration (INI) for user (admin
// or alice) that points Sigul's client at this devstack. The NSS database
// beside it holds the devstack's CA (trusted) and both users' certificates
// and keys, imported as Sigul's README says (certutil, openssl pkcs12,
// pk12util), under an empty database password.
func (s *signetStack) sigulConf(t testing.TB, user string) string {
	t.Helper()
	needTools(t, sigulTools...)
	s.sigulConfOnce.Do(func() { s.sigulConfs, s.sigulConfErr = s.makeSigulConfs(t) })
	if s.sigulConfErr != nil {
		t.Fatalf("Sigul client configuration for signet: %v", s.sigulConfErr)
	}
	c, ok := s.sigulConfs[user]
	if !ok {
		t.Fatalf("no Sigul client configuration for user %q", user)
	}
	return c
}

func (s *signetStack) makeSigulConfs(t testing.TB) (map[string]string, error) {
	dir := s.path("sigul-client")
	nss := filepath.Join(dir, "nss")
	if err := os.MkdirAll(nss, 0o700); err != nil {
		return nil, err
	}
	run := func(name string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	db := "sql:" + nss
	if err := run("certutil", "-N", "-d", db, "--empty-password"); err != nil {
		return nil, err
	}
	if err := run("certutil", "-A", "-d", db, "-n", "signet-ca", "-t", "CT,C,C", "-a", "-i", s.path("pki/ca.pem")); err != nil {
		return nil, err
	}
	confs := map[string]string{}
	for _, u := range []string{"admin", "alice"} {
		// The PKCS#12 transport password is a throwaway: the file is
		// removed at once and the key lives on in the NSS database.
		p12 := filepath.Join(dir, u+".p12")
		if err := run("openssl", "pkcs12", "-export", "-in", s.path("pki/"+u+".pem"), "-inkey", s.path("pki/"+u+"-key.pem"),
			"-name", u, "-out", p12, "-passout", "pass:transport"); err != nil {
			return nil, err
		}
		err := run("pk12util", "-i", p12, "-d", db, "-W", "transport", "-K", "")
		os.Remove(p12)
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, u+".conf")
		ini := fmt.Sprintf(`[client]
bridge-hostname: localhost
bridge-port: %d
server-hostname: server
user-name: %s
client-cert-nickname: %s
[koji]
koji-instances:
[nss]
nss-dir: %s
nss-password:
nss-min-tls: tls1.2
nss-max-tls: tls1.2
[binding]
enabled:
`, s.clientPort, u, u, nss)
		if err := os.WriteFile(conf, []byte(ini), 0o600); err != nil {
			return nil, err
		}
		confs[u] = conf
	}
	return confs, nil
}

// ---- Sigul's client ----

// sigulTree returns W, where sigul-stack.sh pytree put Sigul's unmodified
// Python tree (W/py/client.py and the modules it imports), built once for
// the package.
func sigulTree(t testing.TB) string {
	t.Helper()
	tp := thirdParty(t)
	needTools(t, sigulTools...)
	pkg.mu.Lock()
	defer pkg.mu.Unlock()
	if pkg.pytree == "" && pkg.pytreeErr == nil {
		w, err := pkgDir("sigul-pytree")
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
			defer cancel()
			var out []byte
			out, err = exec.CommandContext(ctx, filepath.Join(tp, "sigul-stack.sh"), "pytree", w).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("sigul-stack.sh pytree: %v\n%s", err, out)
			} else if _, serr := os.Stat(filepath.Join(w, "py/client.py")); serr != nil {
				err = fmt.Errorf("sigul-stack.sh pytree made no client: %v\n%s", serr, out)
			}
		}
		pkg.pytree, pkg.pytreeErr = w, err
	}
	if pkg.pytreeErr != nil {
		t.Fatalf("interop: %s is present but broken: %v", tp, pkg.pytreeErr)
	}
	return pkg.pytree
}

// sigulEnv is the environment Sigul's client runs in: its tree first on
// the module path, byte code kept out of the read-only sources.
func sigulEnv(w string) []string {
	return []string{"PYTHONPATH=" + filepath.Join(w, "py"), "PYTHONPYCACHEPREFIX=" + filepath.Join(w, "pycache")}
}

// sigulClient runs the unmodified Sigul 1.2 client (client.py under
// Debian's /usr/bin/python3) with configuration conf, in batch mode (secrets
// NUL-terminated on standard input, in the order it asks for them), in dir.
func sigulClient(t testing.TB, dir, conf string, secrets []string, args ...string) result {
	t.Helper()
	w := sigulTree(t)
	return execute(t, dir, sigulEnv(w), secrets, "/usr/bin/python3",
		append([]string{filepath.Join(w, "py/client.py"), "-c", conf, "--batch"}, args...)...)
}

// ---- Sigul's bridge and server ----

// sigulStack is a real Sigul 1.2 bridge and server started by
// sigul-stack.sh up in w: users admin and alice, alice key admin of the
// gnupg key "sigul-rsa". Files (sigul-stack.sh's header says more):
// w/signet-client.toml and w/signet-admin.toml for signet's client,
// w/sigul-client/{alice,admin}.conf for Sigul's, PEM files in w/pki.
type sigulStack struct {
	w                      string
	clientPort, serverPort int
	adminPW, alicePass     string // no trailing newline in the files
}

// sigul returns the package's Sigul stack, started on first use and
// stopped when the package's tests end.
func sigul(t testing.TB) *sigulStack {
	t.Helper()
	thirdParty(t)
	needTools(t, append(sigulTools, "python3:sqlalchemy", "python3:gpg", "gpg", "rpmsign", "gcc")...)
	pkg.mu.Lock()
	defer pkg.mu.Unlock()
	if pkg.sigul == nil && pkg.sigulErr == nil {
		w, err := pkgDir("sigul-stack")
		if err == nil {
			var stop func()
			pkg.sigul, stop, err = startSigul(t, w)
			pkg.cleanups = append(pkg.cleanups, stop)
		}
		pkg.sigulErr = err
	}
	if pkg.sigulErr != nil {
		t.Fatalf("interop: a real Sigul bridge and server: %v", pkg.sigulErr)
	}
	return pkg.sigul
}

// startSigul runs sigul-stack.sh up in w; stop (never nil) runs down.
func startSigul(t testing.TB, w string) (*sigulStack, func(), error) {
	script := filepath.Join(thirdParty(t), "sigul-stack.sh")
	p := testenv.FreePorts(t, 2)
	s := &sigulStack{w: w, clientPort: p[0], serverPort: p[1]}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		exec.CommandContext(ctx, script, "down", w).Run()
		// down leaves the gpg-agent of Sigul's server running.
		exec.CommandContext(ctx, "gpgconf", "--homedir", filepath.Join(w, "var/gnupg"), "--kill", "gpg-agent").Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, script, "up", w, strconv.Itoa(p[0]), strconv.Itoa(p[1])).CombinedOutput()
	keyFailed := err != nil && bytes.Contains(out, []byte("new-key sigul-rsa failed"))
	if err != nil && !keyFailed {
		logs, _ := exec.Command("sh", "-c", "tail -n 20 "+filepath.Join(w, "log")+"/*").CombinedOutput()
		return nil, stop, fmt.Errorf("sigul-stack.sh up: %v\n%s\nlogs:\n%s", err, out, logs)
	}
	for name, dst := range map[string]*string{"admin-password": &s.adminPW, "alice-passphrase": &s.alicePass} {
		b, err := os.ReadFile(filepath.Join(w, "secrets", name))
		if err != nil {
			return nil, stop, err
		}
		*dst = string(b)
	}
	if keyFailed {
		// Sigul's server makes its gnupg key with gpg --batch, the
		// passphrase in the parameters, under a gpg-agent configured with
		// max-cache-ttl 1 and loopback pinentry: when the machine is so
		// busy that key generation takes more than a second, the agent
		// has forgotten the passphrase when it protects the new key, asks
		// gpg for it, and gpg fails ("Sorry, we are in batchmode - can't
		// get input"). The bridge, server and users are up by then; only
		// the key is missing. Make it the other way Sigul offers: gpg
		// here, import-key there, alice its key administrator.
		t.Logf("sigul-stack.sh up: Sigul's server could not generate sigul-rsa on this busy machine; importing one made by gpg instead")
		if err := s.importKey(t, "sigul-rsa"); err != nil {
			logs, _ := exec.Command("sh", "-c", "tail -n 20 "+filepath.Join(w, "log")+"/*").CombinedOutput()
			return nil, stop, fmt.Errorf("sigul-stack.sh up: %s\nimporting sigul-rsa instead: %v\nlogs:\n%s", out, err, logs)
		}
	}
	return s, stop, nil
}

// importKey has gpg make an RSA-2048 key (Sigul's stack configures its
// server for RSA-2048 keys) and imports it into the Sigul server as name,
// alice its key administrator with her passphrase, as sigul-stack.sh up
// does with new-key; the public key goes to w/name.asc.
func (s *sigulStack) importKey(t testing.TB, name string) error {
	home, err := os.MkdirTemp("", "signet-interop-gpg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	defer exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
	const transport = "import-transport" // protects the export for the moment it exists
	gpg := func(args ...string) ([]byte, error) {
		out, err := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", transport}, args...)...).Output()
		if err != nil {
			return nil, fmt.Errorf("gpg %s: %w", args[0], err)
		}
		return out, nil
	}
	if _, err := gpg("--quick-gen-key", "Sigul Interop <sigul-interop@example.org>", "rsa2048", "sign", "never"); err != nil {
		return err
	}
	secret, err := gpg("--armor", "--export-secret-keys")
	if err != nil {
		return err
	}
	file := filepath.Join(home, "secret.asc")
	if err := os.WriteFile(file, secret, 0o600); err != nil {
		return err
	}
	run := func(user string, secrets []string, args ...string) (result, error) {
		r := execute(t, "", nil, secrets, filepath.Join(s.w, "sigul"), append([]string{"-c", s.conf(user), "--batch"}, args...)...)
		if r.code != 0 {
			return r, fmt.Errorf("Sigul's client %s: %v", args[0], r)
		}
		return r, nil
	}
	if _, err := run("admin", []string{s.adminPW, transport, s.alicePass}, "import-key", "--key-admin", "alice", name, file); err != nil {
		return err
	}
	r, err := run("alice", []string{s.alicePass}, "get-public-key", name)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.w, name+".asc"), []byte(r.stdout), 0o644)
}

// conf is the Sigul client configuration for user (alice or admin) that
// sigul-stack.sh wrote for this stack.
func (s *sigulStack) conf(user string) string {
	return filepath.Join(s.w, "sigul-client", user+".conf")
}

// signetConf is signet's client configuration for user (alice or admin)
// that sigul-stack.sh wrote for this stack.
func (s *sigulStack) signetConf(user string) string {
	if user == "admin" {
		return filepath.Join(s.w, "signet-admin.toml")
	}
	return filepath.Join(s.w, "signet-client.toml")
}

// signetBinary returns signet's client, built once for the package.
func signetBinary(t testing.TB) string {
	t.Helper()
	pkg.mu.Lock()
	defer pkg.mu.Unlock()
	if pkg.signetBin == "" && pkg.signetBinErr == nil {
		dir, err := pkgDir("bin")
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "build", "-o", dir, "./cmd/signet")
			cmd.Dir = repoRoot(t)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
			if out, berr := cmd.CombinedOutput(); berr != nil {
				err = fmt.Errorf("go build ./cmd/signet: %v\n%s", berr, out)
			}
		}
		pkg.signetBin, pkg.signetBinErr = filepath.Join(dir, "signet"), err
	}
	if pkg.signetBinErr != nil {
		t.Fatal(pkg.signetBinErr)
	}
	return pkg.signetBin
}

// signetClient runs signet's client against this Sigul stack as user
// (alice or admin) in batch mode, in dir.
func (s *sigulStack) signetClient(t testing.TB, dir, user string, secrets []string, args ...string) result {
	t.Helper()
	return execute(t, dir, nil, secrets, signetBinary(t), append([]string{"-c", s.signetConf(user), "--batch"}, args...)...)
}

// TestHarnessSigulStack checks what the harness gives the other tests: a
// real Sigul bridge and server that Sigul's own client signs through, with
// the key sigul-rsa whose public key is in w/sigul-rsa.asc.
func TestHarnessSigulStack(t *testing.T) {
	s := sigul(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, []byte("signed by Sigul 1.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := execute(t, dir, nil, []string{s.alicePass}, filepath.Join(s.w, "sigul"), "-c", s.conf("alice"), "--batch",
		"sign-data", "-o", data+".sig", "sigul-rsa", data)
	if r.code != 0 {
		t.Fatalf("Sigul's client against Sigul's server: sign-data: %v", r)
	}
	pub, err := os.ReadFile(filepath.Join(s.w, "sigul-rsa.asc"))
	if err != nil {
		t.Fatal(err)
	}
	_, env := gpgHome(t, pub)
	gpgVerify(t, env, data+".sig", data)
	// signet's client reaches it with the configuration sigul-stack.sh wrote.
	r = s.signetClient(t, dir, "alice", []string{s.alicePass}, "get-public-key", "sigul-rsa")
	if r.code != 0 || fingerprint(t, []byte(r.stdout)) != fingerprint(t, pub) {
		t.Fatalf("signet's client against Sigul's server: get-public-key sigul-rsa: %v", r)
	}
}
