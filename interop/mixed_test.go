package interop

// Mixed pairs: signet's bridge between Sigul 1.2's client and Sigul 1.2's
// server. signet's bridge offers signet's reuse extension (ALPN
// signet-reuse/1, docs/PROTOCOL.md) on its server port; Sigul's server
// (NSS) negotiates no ALPN, so it must get one request per connection,
// exactly as from Sigul's own bridge.

import (
	"context"
	"fmt"
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

	"github.com/signet-project/signet/internal/testenv"
)

var signetBuilds struct {
	mu   sync.Mutex
	bins map[string]string
}

// signetProgram returns one of signet's programs (cmd/NAME), built once
// for the package.
func signetProgram(t testing.TB, name string) string {
	t.Helper()
	signetBuilds.mu.Lock()
	defer signetBuilds.mu.Unlock()
	if bin, ok := signetBuilds.bins[name]; ok {
		return bin
	}
	dir, err := pkgDir("bin")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir, "./cmd/"+name)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	if signetBuilds.bins == nil {
		signetBuilds.bins = map[string]string{}
	}
	signetBuilds.bins[name] = filepath.Join(dir, name)
	return signetBuilds.bins[name]
}

// startProcess starts a long-running program whose output goes to log; it
// is stopped (SIGTERM, then SIGKILL) when the test ends.
func startProcess(t *testing.T, dir string, env []string, log string, name string, args ...string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
}

// withPort copies the INI file src to dst with the value of key set to
// port.
func withPort(t *testing.T, src, dst, key string, port int) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `:.*$`)
	if !re.Match(b) {
		t.Fatalf("%s has no %s", src, key)
	}
	if err := os.WriteFile(dst, re.ReplaceAll(b, []byte(key+": "+strconv.Itoa(port))), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSigulServerBehindSignetBridge: Sigul 1.2's client and server through
// signet's bridge (the extension on, as by default). Every request is
// served and verified; every connection of Sigul's server negotiated no
// extension and carried one request.
func TestSigulServerBehindSignetBridge(t *testing.T) {
	testenv.SkipShort(t, "it runs Sigul's server and signet's bridge as processes")
	s := sigul(t)
	dir := t.TempDir()
	p := testenv.FreePorts(t, 2)

	// signet's bridge with the Sigul stack's bridge certificate (CN and
	// DNS name localhost), taking Sigul's server by its name. It listens
	// on every address: Sigul's programs dial "localhost".
	conf := filepath.Join(dir, "bridge.toml")
	pki := filepath.Join(s.w, "pki")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `client_listen = ":%d"
server_listen = ":%d"
server_names = ["sigul-server"]
log_level = "debug"
[tls]
cert = %q
key = %q
ca = %q
`, p[0], p[1], filepath.Join(pki, "bridge.pem"), filepath.Join(pki, "bridge-key.pem"), filepath.Join(pki, "ca.pem")), 0o600); err != nil {
		t.Fatal(err)
	}
	bridgeLog := filepath.Join(dir, "bridge.log")
	startProcess(t, dir, nil, bridgeLog, signetProgram(t, "signet-bridge"), "--config", conf, "run")

	// A second Sigul server on the stack's database, gnupg home and NSS
	// database, dialing signet's bridge.
	for _, d := range []string{"log", "pids"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	withPort(t, filepath.Join(s.w, "etc/server.conf"), filepath.Join(dir, "server.conf"), "bridge-port", p[1])
	startProcess(t, dir, []string{"PYTHONPATH=" + filepath.Join(s.w, "py")}, filepath.Join(dir, "server.out"),
		"/usr/bin/python3", filepath.Join(s.w, "py/server.py"), "-c", filepath.Join(dir, "server.conf"), "-vv",
		"--internal-log-dir", filepath.Join(dir, "log"), "--internal-pid-dir", filepath.Join(dir, "pids"))

	// Sigul's client, pointed at signet's bridge.
	for _, u := range []string{"alice", "admin"} {
		withPort(t, s.conf(u), filepath.Join(dir, u+".conf"), "bridge-port", p[0])
	}
	client := func(user string, secrets []string, args ...string) result {
		return execute(t, dir, nil, secrets, filepath.Join(s.w, "sigul"), append([]string{"-c", filepath.Join(dir, user+".conf"), "--batch"}, args...)...)
	}
	var r result
	for i := 0; i < 60; i++ { // until Sigul's server has connected
		if r = client("admin", []string{s.adminPW}, "list-keys"); r.code == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	if r.code != 0 || !strings.Contains(r.stdout, "sigul-rsa") {
		logs, _ := os.ReadFile(bridgeLog)
		t.Fatalf("list-keys through signet's bridge: %v\nbridge log:\n%s", r, logs)
	}
	pub, err := os.ReadFile(filepath.Join(s.w, "sigul-rsa.asc"))
	if err != nil {
		t.Fatal(err)
	}
	_, env := gpgHome(t, pub)
	const signs = 3
	for i := range signs {
		data := filepath.Join(dir, fmt.Sprintf("data%d", i))
		if err := os.WriteFile(data, fmt.Appendf(nil, "signed by Sigul 1.2 through signet's bridge, %d\n", i), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := client("alice", []string{s.alicePass}, "sign-data", "-o", data+".sig", "sigul-rsa", data); r.code != 0 {
			t.Fatalf("sign-data %d: %v", i, r)
		}
		gpgVerify(t, env, data+".sig", data)
	}

	// The bridge's log: each relayed request paired with a connection of
	// its own, none of which negotiated the extension.
	logs, err := os.ReadFile(bridgeLog)
	if err != nil {
		t.Fatal(err)
	}
	var relayed, connected, reused int
	for _, l := range strings.Split(string(logs), "\n") {
		switch {
		case strings.Contains(l, `"msg":"request relayed"`):
			relayed++
			if strings.Contains(l, `"server_conn_request"`) {
				reused++
			}
		case strings.Contains(l, `"msg":"server connected"`):
			connected++
			if !strings.Contains(l, `"reuse":false`) {
				t.Fatalf("Sigul's server connection was not marked as without the extension: %s", l)
			}
		}
	}
	if relayed < 1+signs || reused != 0 || connected < relayed {
		t.Fatalf("%d requests relayed (want at least %d), %d on a reused connection (want 0), %d server connections\n%s",
			relayed, 1+signs, reused, connected, logs)
	}
}

// TestSignetServerBehindSigulBridge: Sigul 1.2's client and bridge with
// signet's server behind (on the devstack's token and database, with the
// Sigul stack's certificate for "sigul-server"). signet's server offers
// the reuse extension; Sigul's bridge (NSS) negotiates none, so every
// request must come on a connection of its own, served and verified, and
// the server must count no request on a reused connection.
func TestSignetServerBehindSigulBridge(t *testing.T) {
	testenv.SkipShort(t, "it runs Sigul's bridge and signet's server as processes")
	s := sigul(t)
	dev := signet(t)
	dir := t.TempDir()
	p := testenv.FreePorts(t, 2)
	for _, d := range []string{"log", "pids", "spool"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	// A second Sigul bridge, on ports of its own.
	withPort(t, filepath.Join(s.w, "etc/bridge.conf"), filepath.Join(dir, "bridge1.conf"), "client-listen-port", p[0])
	withPort(t, filepath.Join(dir, "bridge1.conf"), filepath.Join(dir, "bridge.conf"), "server-listen-port", p[1])
	startProcess(t, dir, []string{"PYTHONPATH=" + filepath.Join(s.w, "py")}, filepath.Join(dir, "bridge.out"),
		"/usr/bin/python3", filepath.Join(s.w, "py/bridge.py"), "-c", filepath.Join(dir, "bridge.conf"), "-vv",
		"--internal-log-dir", filepath.Join(dir, "log"), "--internal-pid-dir", filepath.Join(dir, "pids"))

	// signet's server: the devstack's configuration (token, database),
	// with the Sigul stack's server certificate and CA, dialing that
	// bridge, its metrics written every second.
	b, err := os.ReadFile(dev.path("server.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pki := filepath.Join(s.w, "pki")
	conf := string(b)
	for _, e := range []struct{ re, repl string }{
		{`(?m)^(cert|key|ca) = ".*/(server\.pem|server-key\.pem|ca\.pem)"$`, `$1 = "` + pki + `/$2"`},
		{`(?m)^address = ".*"$`, fmt.Sprintf(`address = "127.0.0.1:%d"`, p[1])},
		{`(?m)^(pin_file|metrics_file|spool_dir|metrics_interval) = .*$`, ``},
	} {
		re := regexp.MustCompile(e.re)
		if !re.MatchString(conf) && e.repl != "" {
			t.Fatalf("the devstack's server.toml has nothing for %s:\n%s", e.re, conf)
		}
		conf = re.ReplaceAllString(conf, e.repl)
	}
	prom := filepath.Join(dir, "server.prom")
	conf = strings.Replace(conf, "[server]\n", fmt.Sprintf("[server]\nmetrics_file = %q\nmetrics_interval = \"1s\"\nspool_dir = %q\n", prom, filepath.Join(dir, "spool")), 1)
	if err := os.WriteFile(filepath.Join(dir, "server.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	serverLog := filepath.Join(dir, "server.log")
	startProcess(t, dir, []string{"SOFTHSM2_CONF=" + dev.path("token/softhsm2.conf")}, serverLog,
		filepath.Join(dev.dir, "bin/signet-server"), "--config", filepath.Join(dir, "server.toml"), "run")

	// Sigul's client, as alice of the devstack (her passphrase there).
	withPort(t, s.conf("alice"), filepath.Join(dir, "alice.conf"), "bridge-port", p[0])
	client := func(args ...string) result {
		return execute(t, dir, nil, []string{dev.alicePass}, filepath.Join(s.w, "sigul"), append([]string{"-c", filepath.Join(dir, "alice.conf"), "--batch"}, args...)...)
	}
	var r result
	for i := 0; i < 60; i++ { // until both have started
		if r = client("get-public-key", "demo-rsa"); r.code == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	if r.code != 0 {
		logs, _ := os.ReadFile(serverLog)
		t.Fatalf("get-public-key through Sigul's bridge: %v\nserver log:\n%s", r, logs)
	}
	_, env := gpgHome(t, []byte(r.stdout))
	const signs = 3
	for i := range signs {
		data := filepath.Join(dir, fmt.Sprintf("data%d", i))
		if err := os.WriteFile(data, fmt.Appendf(nil, "signed by signet's server through Sigul's bridge, %d\n", i), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := client("sign-data", "-o", data+".sig", "demo-rsa", data); r.code != 0 {
			t.Fatalf("sign-data %d: %v", i, r)
		}
		gpgVerify(t, env, data+".sig", data)
	}

	// The server's metrics: every request answered, none on a reused
	// connection.
	metric := func(text, name string) (float64, bool) {
		sum, found := 0.0, false
		for _, l := range strings.Split(text, "\n") {
			if rest, ok := strings.CutPrefix(l, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
				f := strings.Fields(rest)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err == nil {
					sum, found = sum+v, true
				}
			}
		}
		return sum, found
	}
	var text string
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(prom)
		text = string(b)
		if n, _ := metric(text, "signet_server_requests_total"); n >= 1+signs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's metrics file never showed %d requests:\n%s", 1+signs, text)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n, ok := metric(text, "signet_server_bridge_reused_requests_total"); !ok || n != 0 {
		t.Fatalf("requests on reused connections: %v (found %v), want 0\n%s", n, ok, text)
	}
}
