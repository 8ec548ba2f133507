package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signet-project/signet/bridge"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testpki"
)

// TestMain lets a test run this binary as signet-bridge itself.
func TestMain(m *testing.M) {
	if os.Getenv("SIGNET_BRIDGE_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writePKI writes a CA, the bridge's certificate and key, and those of a
// server (CN server.test) and a user (CN alice), as PEM files in dir.
func writePKI(t *testing.T, dir string) (cert, key, ca string) {
	t.Helper()
	pki := testpki.New(t, "test CA")
	leaf := func(name, cn string, dns []string, eku ...x509.ExtKeyUsage) (string, string) {
		c := pki.MustIssue(t, testpki.Leaf{CN: cn, DNSNames: dns, EKU: eku})
		cert, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if err := c.Write(cert, key); err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	// Servers and users as Sigul's certutil recipe makes them: no EKU.
	leaf("server", "server.test", nil)
	leaf("alice", "alice", nil)
	leaf("bob", "bob", nil)
	cert, key = leaf("bridge", "bridge.test", []string{"bridge.test"}, x509.ExtKeyUsageServerAuth)
	ca = filepath.Join(dir, "ca.crt")
	if err := pki.WriteCert(ca); err != nil {
		t.Fatal(err)
	}
	return cert, key, ca
}

// freeAddrs returns n distinct loopback addresses (host:port) whose ports
// were free a moment ago (testenv.FreePorts), for the bridge's listeners.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for _, p := range testenv.FreePorts(t, n) {
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	}
	return addrs
}

// writeConfig writes a configuration with the certificates and extra
// lines (top-level keys, before the tables).
func writeConfig(t *testing.T, extra string, tables string) string {
	t.Helper()
	dir := t.TempDir()
	cert, key, ca := writePKI(t, dir)
	p := filepath.Join(dir, "bridge.toml")
	if !strings.Contains(extra, "server_names") {
		extra += "\nserver_names = [\"server.test\"]"
	}
	body := fmt.Sprintf("%s\n[tls]\ncert = %q\nkey = %q\nca = %q\n%s\n", extra, cert, key, ca, tables)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func execute(ctx context.Context, args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"check-config", "--help"}, {"help", "run"}} {
		out, err := execute(context.Background(), args...)
		if err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	out, _ := execute(context.Background(), "run", "--help")
	for _, key := range []string{"client_listen", "server_listen", "metrics_listen", "pairing_timeout", "max_idle_servers",
		"proxy_cns", "lenient_cn", "server_names", "request_timeout", "min_transfer_rate", "transfer_grace",
		"max_requests_per_cn", "[requests_per_cn]", "max_handshakes", "max_handshakes_per_ip", "max_pending_pairings", "server_reuse", "max_requests_per_server_connection", "[tls]", "cert", "key", "ca", "[limits]", "Koji"} {
		if !strings.Contains(out, key) {
			t.Errorf("run --help does not mention %s", key)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	cfg := writeConfig(t, `client_listen = "127.0.0.1:1"
server_listen = "127.0.0.1:2"
metrics_listen = "localhost:3"
pairing_timeout = "5s"
max_idle_servers = 7
proxy_cns = ["robosignatory", "koji-builder"]
lenient_cn = false
client_timeout = "1m"
server_timeout = "30m"
request_timeout = "20m"
min_transfer_rate = 100000
transfer_grace = "5s"
max_requests_per_cn = 3
max_handshakes = 50
max_handshakes_per_ip = 5
max_pending_pairings = 9
server_reuse = false
max_requests_per_server_connection = 50`, "[limits]\nsign-data = 1073741824\n[requests_per_cn]\nRoboSignatory = 12\n")
	out, err := execute(context.Background(), "check-config", "--config", cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"client_listen     127.0.0.1:1", "metrics_listen    localhost:3", "pairing_timeout   5s",
		"max_idle_servers  7", "proxy_cns         robosignatory, koji-builder", "server_timeout    30m0s",
		"limit sign-data   1073741824", "server_names      server.test", "request_timeout   20m0s",
		"min_transfer_rate 100000", "transfer_grace    5s", "max_requests_per_cn   3", "requests_per_cn robosignatory 12",
		"max_handshakes        50", "max_handshakes_per_ip 5", "max_pending_pairings  9", "server_reuse      false",
		"max_requests_per_server_connection 50", "configuration OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	// Flags win over the file.
	out, err = execute(context.Background(), "check-config", "--config", cfg, "--client-listen", "127.0.0.1:9")
	if err != nil || !strings.Contains(out, "client_listen     127.0.0.1:9") {
		t.Errorf("flag did not win: %v\n%s", err, out)
	}
}

// TestCheckConfigDefaults: what is not set is printed as the value the
// bridge runs with, not as zero.
func TestCheckConfigDefaults(t *testing.T) {
	cfg := writeConfig(t, "client_listen = \"127.0.0.1:1\"\nserver_listen = \"127.0.0.1:2\"", "")
	out, err := execute(context.Background(), "check-config", "--config", cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		fmt.Sprintf("pairing_timeout   %s\n", bridge.DefaultPairingTimeout),
		fmt.Sprintf("handshake_timeout %s\n", bridge.DefaultHandshakeTimeout),
		fmt.Sprintf("max_idle_servers  %d\n", bridge.DefaultMaxIdleServers),
		fmt.Sprintf("client_timeout    %s\n", bridge.DefaultClientTimeout),
		fmt.Sprintf("server_timeout    %s\n", bridge.DefaultServerTimeout),
		fmt.Sprintf("request_timeout   %s\n", bridge.DefaultRequestTimeout),
		fmt.Sprintf("min_transfer_rate %d\n", bridge.DefaultMinTransferRate),
		fmt.Sprintf("transfer_grace    %s\n", bridge.DefaultTransferGrace),
		fmt.Sprintf("max_requests_per_cn   %d\n", bridge.DefaultMaxRequestsPerCN),
		fmt.Sprintf("max_handshakes        %d\n", bridge.DefaultMaxHandshakes),
		fmt.Sprintf("max_handshakes_per_ip %d\n", bridge.DefaultMaxHandshakesPerIP),
		fmt.Sprintf("max_pending_pairings  %d\n", bridge.DefaultMaxPendingPairings),
		"server_reuse      true\n",
		fmt.Sprintf("max_requests_per_server_connection %d\n", bridge.DefaultMaxRequestsPerServerConn),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, " 0\n") || strings.Contains(out, " 0s\n") {
		t.Errorf("a zero is printed for an unset value:\n%s", out)
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, extra, tables, want string
	}{
		{"metrics on every interface", `metrics_listen = "0.0.0.0:9334"`, "", "not a loopback address"},
		{"metrics without host", `metrics_listen = ":9334"`, "", "not a loopback address"},
		{"metrics on a public address", `metrics_listen = "192.0.2.7:9334"`, "", "not a loopback address"},
		{"duration without unit", `pairing_timeout = 30`, "", "pairing_timeout"},
		{"bad duration", `client_timeout = "soon"`, "", "client_timeout"},
		{"limit above the protocol", "", "[limits]\nimport-key = 2097152\n", "can only be lowered"},
		{"limit for an unknown op", "", "[limits]\nfrobnicate = 1\n", "not a protocol v1 operation"},
		{"negative limit", "", "[limits]\nsign-data = -1\n", "non-negative"},
		{"bad log level", `log_level = "loud"`, "", "log_level"},
		{"no server names", `server_names = []`, "", "server_names"},
		{"zero rate", `min_transfer_rate = 0`, "", "min_transfer_rate"},
		{"rate as a string", `min_transfer_rate = "fast"`, "", "min_transfer_rate"},
		{"negative per-CN cap", `max_requests_per_cn = -1`, "", "max_requests_per_cn"},
		{"zero handshakes", `max_handshakes = 0`, "", "max_handshakes"},
		{"zero requests for a CN", "", "[requests_per_cn]\nrobot = 0\n", "requests_per_cn"},
		{"bad request timeout", `request_timeout = "long"`, "", "request_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.extra+"\nclient_listen = \"127.0.0.1:0\"\nserver_listen = \"127.0.0.1:0\"", tc.tables)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := execute(ctx, "run", "--config", cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
	t.Run("no tls", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "b.toml")
		os.WriteFile(p, []byte("client_listen = \"127.0.0.1:0\"\n"), 0o600)
		if _, err := execute(context.Background(), "run", "--config", p); err == nil || !strings.Contains(err.Error(), "[tls]") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestRunAndSIGTERM runs the real binary, checks that both ports and the
// metrics endpoint answer, then sends SIGTERM and expects a clean exit.
func TestRunAndSIGTERM(t *testing.T) {
	testenv.SkipShort(t, "runs signet-bridge as a process")
	a := freeAddrs(t, 3)
	client, server, metrics := a[0], a[1], a[2]
	cfg := writeConfig(t, fmt.Sprintf("client_listen = %q\nserver_listen = %q\nmetrics_listen = %q\nshutdown_timeout = \"5s\"", client, server, metrics), "")
	cmd := exec.Command(os.Args[0], "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "SIGNET_BRIDGE_AS_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	var body string
	for {
		ok := true
		for _, a := range []string{client, server} {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			if resp, err := http.Get("http://" + metrics + "/metrics"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bridge did not come up:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, "signet_bridge_idle_server_connections") {
		t.Fatalf("metrics:\n%s", body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"signet-bridge stopped"`) {
		t.Errorf("log:\n%s", stderr.String())
	}
}

// TestUnknownKeys: a misspelt key is refused with the file, the key and
// the closest known key, instead of silently falling back to the default.
func TestUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ extra, tables, want string }{
		{`lenient_cm = true`, "", `unknown key "lenient_cm" (did you mean "lenient_cn"?)`},
		{`max_reply_paylod = 1024`, "", `unknown key "max_reply_paylod" (did you mean "max_reply_payload"?)`},
		{"", "[server]\nmax_file_payload = 1024\n", `unknown key "server"`},
		// The extra tables follow [tls]: this key is in it.
		{"", "key_file = \"x\"\n", `unknown key "tls.key_file" (did you mean "tls.key"?)`},
	} {
		cfg := writeConfig(t, tc.extra+"\nclient_listen = \"127.0.0.1:0\"\nserver_listen = \"127.0.0.1:0\"", tc.tables)
		for _, cmd := range []string{"run", "check-config"} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := execute(ctx, cmd, "--config", cfg)
			cancel()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), cfg) {
				t.Errorf("%s with %q%q: got %v, want an error naming %s and %q", cmd, tc.extra, tc.tables, err, cfg, tc.want)
			}
		}
	}
}

// TestKeyFileMode: a TLS key others can read is refused, with the mode
// expected.
func TestKeyFileMode(t *testing.T) {
	cfg := writeConfig(t, "client_listen = \"127.0.0.1:0\"\nserver_listen = \"127.0.0.1:0\"", "")
	key := filepath.Join(filepath.Dir(cfg), "bridge.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := execute(context.Background(), "check-config", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "mode 0644") || !strings.Contains(err.Error(), "0600 or 0400") {
		t.Fatalf("a TLS key of mode 0644: %v", err)
	}
	os.Chmod(key, 0o600)
	if _, err := execute(context.Background(), "check-config", "--config", cfg); err != nil {
		t.Fatal(err)
	}
}

// TestKojiConfig: [koji.NAME] tables are read strictly and checked.
func TestKojiConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key, ca := writePKI(t, dir)
	pem := filepath.Join(dir, "koji.pem")
	c, _ := os.ReadFile(cert)
	k, _ := os.ReadFile(key)
	if err := os.WriteFile(pem, append(c, k...), 0o600); err != nil {
		t.Fatal(err)
	}
	good := fmt.Sprintf("[koji.fedora]\nhub = \"https://koji.example.org/kojihub\"\ntopurl = \"https://kojipkgs.example.org\"\ncert = %q\nca = %q\ntimeout = \"1m\"\n", pem, ca)
	cfg := writeConfig(t, "", good)
	out, err := execute(context.Background(), "check-config", "--config", cfg)
	if err != nil || !strings.Contains(out, "koji fedora hub https://koji.example.org/kojihub topurl https://kojipkgs.example.org") {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, tc := range []struct{ tables, want string }{
		{strings.Replace(good, "topurl", "top_url", 1), "top_url"},
		{strings.Replace(good, "https://koji.example.org/kojihub", "koji.example.org", 1), "is not an http(s) URL"},
		{fmt.Sprintf("[koji.x]\nhub = \"https://h/kojihub\"\ntopurl = \"https://h\"\nca = %q\n", ca), "needs hub, topurl and cert"},
		{strings.Replace(good, pem, cert, 1), "koji"},
	} {
		cfg := writeConfig(t, "", tc.tables)
		if _, err := execute(context.Background(), "check-config", "--config", cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.tables, err, tc.want)
		}
	}
	if err := os.Chmod(pem, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := execute(context.Background(), "check-config", "--config", writeConfig(t, "", good)); err == nil || !strings.Contains(err.Error(), "Koji client key file") {
		t.Errorf("a world-readable Koji key was accepted: %v", err)
	}
}
