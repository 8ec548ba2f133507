package multiservertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-project/signet/formats/rpm"
	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/stacktest"
	"github.com/signet-project/signet/internal/testenv"
	postgrestest "github.com/signet-project/signet/postgres-test"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// packages is how many packages the batch signs.
const packages = 500

// stack is the processes and files of one test run.
type stack struct {
	t      *testing.T
	dir    string
	bin    string
	module string
	pki    string
	// db is the database both servers share: a postgres:// URL.
	db string

	mu    sync.Mutex
	procs map[string]*proc
}

// proc is one long-lived process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// TestTwoServersTwoBridges signs 500 packages with head signing through
// signet's sign-rpms while, mid-batch, the bridge carrying the batch is
// stopped (SIGTERM, with a 10 ms shutdown timeout) and then the server
// carrying it is killed with SIGKILL. The client must exit 0 with every
// package written once and accepted by rpmkeys, and every signature that
// left a server must have its record in an audit chain that verifies.
//
// The events are placed by what the test observes, not by time: the
// bridge is stopped once a first share of the outputs has been written
// (the client starts on the first bridge of its list), and the server is
// killed once more outputs have come back over the resumed connection,
// the server being the one whose metrics file shows the batch in flight.
func TestTwoServersTwoBridges(t *testing.T) {
	testenv.SkipShort(t, "builds and runs two signet-servers, two signet-bridges and signet with 500 packages")
	testenv.MustHave(t, "rpmbuild", "rpmkeys", "gpg")
	mod, err := softhsmtest.Module()
	if err != nil {
		testenv.Unavailable(t, "SoftHSM2: %v", err)
	}
	dir := t.TempDir()
	s := &stack{t: t, dir: dir, bin: filepath.Join(dir, "bin"), module: mod, procs: map[string]*proc{}}
	s.build()
	s.pki = stacktest.WritePKI(t, filepath.Join(dir, "pki"), "multiserver test CA")
	pg := postgrestest.Start(t)
	s.db = pg.URL(pg.CreateDatabase(t))

	// Tokens A and B share the user PIN: an access row in the database
	// holds the PIN wrapped under the user's passphrase, and one
	// database serves both tokens.
	secrets := filepath.Join(dir, "secrets")
	mkdir(t, secrets)
	writeSecret(t, filepath.Join(secrets, "pin"), randHex(t, 8))
	writeSecret(t, filepath.Join(secrets, "alice-pass"), "alice-"+randHex(t, 8))
	for _, n := range []string{"a", "b"} {
		mkdir(t, filepath.Join(dir, "srv-"+n, "spool"))
		mkdir(t, filepath.Join(dir, "tok-"+n, "tokens"))
		writeFile(t, s.conf(n), fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
			filepath.Join(dir, "tok-"+n, "tokens")))
		writeSecret(t, filepath.Join(dir, "tok-"+n, "so-pin"), randHex(t, 8))
		s.admin(n, "token", "init", "--label", "scale-"+n, "--so-pin-file", filepath.Join(dir, "tok-"+n, "so-pin"),
			"--pin-file", filepath.Join(secrets, "pin"))
	}

	// The key: made for backup on A, restored into B after two of the
	// wrap key's three shares were imported there.
	pin := "--pin-file=" + filepath.Join(secrets, "pin")
	tokA, tokB := s.token("a", filepath.Join(secrets, "pin")), s.token("b", filepath.Join(secrets, "pin"))
	wrap := stacktest.CreateWrapKey(t, tokA, filepath.Join(dir, "shares"), 2, "ana", "ben", "cho")
	s.admin("a", "key", "generate", "rpmkey", "--type", "rsa4096", "--backup", "--uid", "Scale test <scale@example.org>", pin)
	backup := filepath.Join(dir, "rpmkey.backup")
	stacktest.Backup(t, tokA, "rpmkey", backup)
	s.admin("a", "key", "export", "rpmkey", "--format", "openpgp", "-o", filepath.Join(dir, "rpmkey.asc"))
	stacktest.ImportWrapKey(t, tokB, wrap.ID, wrap.Shares["ana"], wrap.Shares["cho"])
	stacktest.Restore(t, tokB, backup)
	s.admin("a", "user", "add", "alice")
	s.admin("a", "key", "grant", "rpmkey", "alice", "--passphrase-file", filepath.Join(secrets, "alice-pass"), pin)
	fa := keyLine(t, s.admin("a", "key", "list"))
	fb := keyLine(t, s.admin("b", "key", "list"))
	if fa == "" || fa != fb {
		t.Fatalf("the tokens' keys differ:\nA: %s\nB: %s", fa, fb)
	}

	pkgs := buildPackages(t, filepath.Join(dir, "rpms"), packages)

	// Two bridges, two servers dialing both.
	type ports struct{ client, server, metrics int }
	bp := map[string]ports{}
	for _, b := range []string{"1", "2"} {
		p := testenv.FreePorts(t, 3)
		bp[b] = ports{p[0], p[1], p[2]}
		writeFile(t, filepath.Join(dir, "bridge-"+b+".toml"), fmt.Sprintf(`client_listen = "127.0.0.1:%d"
server_listen = "127.0.0.1:%d"
metrics_listen = "127.0.0.1:%d"
server_names = ["server"]
# A stop cuts the requests in flight at once, as a crash or an
# impatient operator would; the batch must not finish in the grace.
shutdown_timeout = "10ms"

[tls]
cert = "%[4]s/bridge.pem"
key = "%[4]s/bridge-key.pem"
ca = "%[4]s/ca.pem"
`, p[0], p[1], p[2], s.pki))
		s.start("bridge-"+b, nil, filepath.Join(s.bin, "signet-bridge"), "--config", filepath.Join(dir, "bridge-"+b+".toml"), "run")
	}
	for _, n := range []string{"a", "b"} {
		writeFile(t, filepath.Join(dir, "srv-"+n, "server.toml"), fmt.Sprintf(`database = %q
transcript = "%[2]s/ceremony.log"

[token]
module = %[3]q
label = "scale-%[4]s"

[tls]
cert = "%[5]s/server.pem"
key = "%[5]s/server-key.pem"
ca = "%[5]s/ca.pem"

[[bridge]]
address = "127.0.0.1:%[6]d"
server_name = "localhost"
idle = 2

[[bridge]]
address = "127.0.0.1:%[7]d"
server_name = "localhost"
idle = 2

[server]
name = "server-%[4]s"
spool_dir = "%[2]s/spool"
metrics_file = "%[2]s/metrics.prom"
metrics_interval = "100ms"
`, s.db, filepath.Join(dir, "srv-"+n), s.module, n, s.pki, bp["1"].server, bp["2"].server))
		s.start("server-"+n, []string{"SOFTHSM2_CONF=" + s.conf(n)}, filepath.Join(s.bin, "signet-server"),
			"--config", filepath.Join(dir, "srv-"+n, "server.toml"), "run")
	}
	for _, b := range []string{"1", "2"} {
		waitFor(t, 2*time.Minute, "both servers' idle connections at bridge "+b, func() bool {
			return bridgeMetric(bp[b].metrics, "signet_bridge_idle_server_connections") >= 4
		})
	}
	writeFile(t, filepath.Join(dir, "alice.toml"), fmt.Sprintf(`bridge-hostname = "localhost"
bridge-port = %d
bridges = ["localhost:%d"]
server-hostname = "server"
user-name = "alice"
ca-file = "%[3]s/ca.pem"
client-cert-file = "%[3]s/alice.pem"
client-key-file = "%[3]s/alice-key.pem"
`, bp["1"].client, bp["2"].client, s.pki))

	// The batch, with the events placed by the outputs written so far.
	out := filepath.Join(dir, "signed")
	mkdir(t, out)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	pass, err := os.ReadFile(filepath.Join(secrets, "alice-pass"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-c", filepath.Join(dir, "alice.toml"), "--batch", "sign-rpms", "--head-signing", "-o", out, "rpmkey"}, pkgs...)
	client := exec.CommandContext(ctx, filepath.Join(s.bin, "signet"), args...)
	client.Stdin = bytes.NewReader(append(bytes.TrimSpace(pass), 0))
	var clientOut bytes.Buffer
	client.Stdout, client.Stderr = &clientOut, &clientOut
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	clientDone := make(chan error, 1)
	go func() { clientDone <- client.Wait() }()

	type event struct {
		what    string
		outputs int
	}
	var events []event
	var clientErr error
	finished := false
	stage := 0
	var bridgeStoppedAt, killAt int
	for !finished {
		select {
		case clientErr = <-clientDone:
			finished = true
			continue
		case <-ctx.Done():
			t.Fatalf("the client did not finish within 15 minutes; events %v\n%s", events, clientOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		n := countOutputs(t, out)
		switch {
		case stage == 0 && n >= packages/5:
			// The client starts with the first bridge of its list.
			s.stop("bridge-1", syscall.SIGTERM, 30*time.Second)
			bridgeStoppedAt = countOutputs(t, out)
			events = append(events, event{"bridge 1 stopped (SIGTERM)", n})
			stage++
		case stage == 1 && n >= bridgeStoppedAt+packages/10:
			victim := ""
			waitFor(t, time.Minute, "one server with the batch in flight", func() bool {
				a := serverMetric(t, filepath.Join(dir, "srv-a", "metrics.prom"), "signet_server_requests_in_flight")
				b := serverMetric(t, filepath.Join(dir, "srv-b", "metrics.prom"), "signet_server_requests_in_flight")
				switch {
				case a >= 1 && b == 0:
					victim = "a"
				case b >= 1 && a == 0:
					victim = "b"
				}
				return victim != "" || countOutputs(t, out) == packages
			})
			if victim == "" {
				t.Fatalf("the batch finished before a server could be killed mid-batch; events %v", events)
			}
			killAt = countOutputs(t, out)
			s.stop("server-"+victim, syscall.SIGKILL, 30*time.Second)
			events = append(events, event{"server " + victim + " killed (SIGKILL)", killAt})
			stage++
		}
	}
	t.Logf("events: %v; client output:\n%s", events, clientOut.String())
	if clientErr != nil {
		t.Fatalf("signet sign-rpms: %v\n%s", clientErr, clientOut.String())
	}
	if stage != 2 {
		t.Fatalf("the batch finished after %d of the 2 events (%v): nothing was interrupted", stage, events)
	}
	for _, e := range events {
		if e.outputs >= packages {
			t.Fatalf("%s after the last package was written: not mid-batch", e.what)
		}
	}
	if m := bridgeMetric(bp["2"].metrics, "signet_bridge_requests_total"); m < 1 {
		t.Fatalf("bridge 2 relayed no request: the batch did not move to it (%v)", m)
	}

	// Every package written once, nothing else in the output directory.
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != packages {
		var names []string
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".rpm") || strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
		t.Fatalf("%d files in the output directory, want %d; unexpected: %v", len(entries), packages, names)
	}
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(out, filepath.Base(p))); err != nil {
			t.Fatalf("no output for %s: %v", filepath.Base(p), err)
		}
	}

	// rpmkeys accepts every package with A's certificate.
	rpmdb := filepath.Join(dir, "rpmdb")
	mkdir(t, rpmdb)
	testenv.Run(t, "", nil, "rpmkeys", "--dbpath", rpmdb, "--import", filepath.Join(dir, "rpmkey.asc"))
	keyID := pgpKeyID(t, dir, filepath.Join(dir, "rpmkey.asc"))
	checkRPMs(t, rpmdb, keyID, out, pkgs)

	// The one audit chain verifies and holds a successful sign-rpms
	// record for every package (by its header's SHA-256, as the server
	// records it), written by the server that signed it.
	if v := s.admin("a", "audit", "verify"); !strings.Contains(v, "audit chain OK") {
		t.Fatalf("audit verify: %s", v)
	}
	recorded := map[string]int{}
	servers := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(s.admin("a", "audit", "show", "--last", "100000")))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Operation, Result, Digest, Server string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit show: %v: %s", err, sc.Text())
		}
		if r.Operation != "sign-rpms" || r.Result != "ok" || r.Digest == "" {
			continue
		}
		recorded[r.Digest]++
		servers[r.Server]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// Each server signed part of the batch: the one killed before, the
	// other after.
	if servers["server-a"] == 0 || servers["server-b"] == 0 || len(servers) != 2 {
		t.Fatalf("successful sign-rpms records by server: %v, want some from each of server-a and server-b", servers)
	}
	again := 0
	for _, p := range pkgs {
		d := "sha256:" + headerSHA256(t, p)
		switch c := recorded[d]; {
		case c == 0:
			t.Fatalf("%s was signed but no audit record has its header digest %s", filepath.Base(p), d)
		case c > 1:
			again++
		}
	}
	t.Logf("%d packages signed; %d of them signed twice (their reply was lost with the bridge or the server); audit records from %v",
		packages, again, servers)
}

func (s *stack) build() {
	s.t.Helper()
	cmd := exec.Command("go", "build", "-o", s.bin+"/", "./cmd/signet-server", "./cmd/signet-bridge", "./cmd/signet")
	cmd.Dir = artifacts.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("go build: %v\n%s", err, out)
	}
}

// conf is token n's SoftHSM2 configuration file.
func (s *stack) conf(n string) string { return filepath.Join(s.dir, "tok-"+n, "softhsm2.conf") }

// admin runs a signet-server command on token n with the shared
// database and returns its standard output.
func (s *stack) admin(n string, args ...string) string {
	s.t.Helper()
	full := append([]string{"--batch", "--module", s.module, "--token-label", "scale-" + n,
		"--database", s.db, "--transcript", filepath.Join(s.dir, "srv-"+n, "ceremony.log")}, args...)
	cmd := exec.Command(filepath.Join(s.bin, "signet-server"), full...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+s.conf(n))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("signet-server %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// token is token n for the ceremony commands, with the user PIN in
// pinFile.
func (s *stack) token(n, pinFile string) stacktest.Token {
	return stacktest.Token{
		Admin:     func(args ...string) string { s.t.Helper(); return s.admin(n, args...) },
		PINFile:   pinFile,
		SOPINFile: filepath.Join(s.dir, "tok-"+n, "so-pin"),
	}
}

// start runs a long-lived process named name, its output in a log file;
// the test's cleanup stops it.
func (s *stack) start(name string, env []string, prog string, args ...string) {
	s.t.Helper()
	logPath := filepath.Join(s.dir, name+".log")
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); log.Close(); close(p.done) }()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	s.t.Cleanup(func() {
		s.stop(name, syscall.SIGTERM, 30*time.Second)
		if s.t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				s.t.Logf("%s log (last 3000 bytes):\n%s", name, tailBytes(b, 3000))
			}
		}
	})
}

// stop sends sig to the process and waits for it to end, killing it
// after wait.
func (s *stack) stop(name string, sig syscall.Signal, wait time.Duration) {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// buildPackages builds n distinct noarch packages (one file each) with
// rpmbuild, as the subpackages of one spec, and returns their paths.
func buildPackages(t *testing.T, dir string, n int) []string {
	t.Helper()
	mkdir(t, dir)
	var spec strings.Builder
	spec.WriteString("Name: scale\nVersion: 1.0\nRelease: 1\nSummary: scale test\nLicense: MIT\nBuildArch: noarch\n" +
		"%description\nscale test packages\n%install\nmkdir -p %{buildroot}/usr/share/scale\n" +
		"for i in $(seq -w 0 " + strconv.Itoa(n-1) + "); do echo \"package $i\" > %{buildroot}/usr/share/scale/file-$i; done\n")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("scale-pkg-%03d", i)
		fmt.Fprintf(&spec, "%%package -n %s\nSummary: package %d\n%%description -n %s\npackage %d\n%%files -n %s\n/usr/share/scale/file-%0*d\n",
			name, i, name, i, name, len(strconv.Itoa(n-1)), i)
	}
	specPath := filepath.Join(dir, "scale.spec")
	writeFile(t, specPath, spec.String())
	top := filepath.Join(dir, "top")
	cmd := exec.Command("rpmbuild", "--define", "_topdir "+top, "--define", "_build_id_links none", "-bb", specPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, tailBytes(out, 3000))
	}
	paths, _ := filepath.Glob(filepath.Join(top, "RPMS", "noarch", "scale-pkg-*.rpm"))
	if len(paths) != n {
		t.Fatalf("rpmbuild made %d packages, want %d", len(paths), n)
	}
	return paths
}

// checkRPMs runs rpmkeys --checksig -v over the outputs, 50 at a time,
// and wants each one's header signature by keyID and its digests OK.
func checkRPMs(t *testing.T, rpmdb, keyID, out string, pkgs []string) {
	t.Helper()
	for i := 0; i < len(pkgs); i += 50 {
		var files []string
		for _, p := range pkgs[i:min(i+50, len(pkgs))] {
			files = append(files, filepath.Join(out, filepath.Base(p)))
		}
		cmd := exec.Command("rpmkeys", append([]string{"--dbpath", rpmdb, "--checksig", "-v"}, files...)...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rpmkeys --checksig: %v\n%s", err, b)
		}
		per := map[string]string{}
		cur := ""
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasSuffix(l, ":") && !strings.HasPrefix(l, " ") {
				cur = strings.TrimSuffix(l, ":")
				continue
			}
			per[cur] += l + "\n"
		}
		for _, f := range files {
			v := per[f]
			if !strings.Contains(v, "Header V4 RSA/SHA256 Signature, key ID "+keyID+": OK") ||
				!strings.Contains(v, "Payload SHA256 digest: OK") || strings.Contains(v, "NOT OK") || strings.Contains(v, "BAD") {
				t.Fatalf("rpmkeys --checksig -v %s:\n%s", f, v)
			}
		}
	}
}

// headerSHA256 is the SHA-256 of a package's main header, as the server's
// audit records name the packages it signed.
func headerSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	p, err := rpm.Read(f, fi.Size())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return hex.EncodeToString(p.HeaderSHA256())
}

// countOutputs counts the signed packages written so far (not the
// temporary files they are written through).
func countOutputs(t *testing.T, dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".rpm") {
			n++
		}
	}
	return n
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bridgeMetric sums the samples of a bridge metric (-1 when the bridge
// does not answer).
func bridgeMetric(port int, name string) float64 {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	return sumMetric(string(b), name)
}

// serverMetric reads a metric from a server's metrics file (0 while the
// file is not written yet).
func serverMetric(t *testing.T, path, name string) float64 {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return sumMetric(string(b), name)
}

func sumMetric(text, name string) float64 {
	sum := 0.0
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 || (f[0] != name && !strings.HasPrefix(f[0], name+"{")) {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// keyLine is the rpmkey line of `key list` (name, type, fingerprint...)
// without the token label column, which differs between tokens.
func keyLine(t *testing.T, list string) string {
	for _, l := range strings.Split(list, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "rpmkey" {
			var keep []string
			for _, x := range f {
				if !strings.HasPrefix(x, "scale-") {
					keep = append(keep, x)
				}
			}
			return strings.Join(keep, " ")
		}
	}
	t.Fatalf("no rpmkey in key list:\n%s", list)
	return ""
}

// pgpKeyID is the short key id of an armored certificate, as gpg reads it
// and rpmkeys prints it.
func pgpKeyID(t *testing.T, dir, cert string) string {
	t.Helper()
	home := filepath.Join(dir, "gnupg")
	mkdir(t, home)
	os.Chmod(home, 0o700)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	cmd := exec.Command("gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys", cert)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gpg --show-keys: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("gpg --show-keys:\n%s", out)
	}
	return strings.ToLower(m[1][8:])
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeSecret(t *testing.T, path, s string) { writeFile(t, path, s+"\n") }

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func tailBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
