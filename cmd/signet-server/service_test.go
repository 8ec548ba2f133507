package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/bridge"
	"github.com/signet-project/signet/cmd/internal/health"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testpki"
	"github.com/signet-project/signet/server/store"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// testPKI writes a CA and a server certificate under dir and returns the
// bridge's certificate and the CA pool.
func testPKI(t *testing.T, dir string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testpki.New(t, "test CA")
	if err := ca.WriteCert(filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	bc := ca.MustIssue(t, testpki.Leaf{CN: "127.0.0.1", IPs: testpki.Loopback, EKU: testpki.Server})
	sc := ca.MustIssue(t, testpki.Leaf{CN: "server", EKU: testpki.Both})
	if err := sc.Write(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")); err != nil {
		t.Fatal(err)
	}
	return bc.TLS, ca.Pool
}

// TestSystemdService runs `signet-server run` as systemd would: the PIN
// from a credential in $CREDENTIALS_DIRECTORY, readiness to a real unix
// datagram socket in $NOTIFY_SOCKET, against a real bridge; then `status`.
func TestSystemdService(t *testing.T) {
	testenv.SkipShort(t, "runs signet-server and signet-bridge as processes")
	dir := t.TempDir()
	tk := softhsmtest.NewDir(t)
	t.Setenv("SOFTHSM2_CONF", tk.Conf)
	bcert, pool := testPKI(t, dir)

	b, err := bridge.New(bridge.Config{Certificate: bcert, CA: pool, ServerNames: []string{"server"}})
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := net.Listen("tcp", "127.0.0.1:0")
	sl, _ := net.Listen("tcp", "127.0.0.1:0")
	go b.Serve(cl, sl)
	defer b.Shutdown(context.Background())

	db := filepath.Join(dir, "signet.db")
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	metrics := filepath.Join(dir, "server.prom")
	conf := filepath.Join(dir, "server.toml")
	os.WriteFile(conf, []byte(`database = "`+db+`"
transcript = "`+filepath.Join(dir, "ceremony.log")+`"
[token]
module = "`+tk.Module+`"
label = "`+tk.Label+`"
[tls]
cert = "`+filepath.Join(dir, "server.pem")+`"
key = "`+filepath.Join(dir, "server-key.pem")+`"
ca = "`+filepath.Join(dir, "ca.pem")+`"
[[bridge]]
address = "`+sl.Addr().String()+`"
server_name = "127.0.0.1"
idle = 2
[server]
pin_credential = "signet-token.pin"
metrics_file = "`+metrics+`"
`), 0o600)

	creds := filepath.Join(dir, "credentials")
	os.Mkdir(creds, 0o700)
	pinPath := filepath.Join(creds, "signet-token.pin")

	// Without $CREDENTIALS_DIRECTORY: a clear refusal.
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	os.Unsetenv("CREDENTIALS_DIRECTORY")
	if err := execute(context.Background(), "--config", conf, "run"); err == nil || !strings.Contains(err.Error(), "CREDENTIALS_DIRECTORY") {
		t.Fatalf("run without $CREDENTIALS_DIRECTORY: %v", err)
	}
	// A wrong PIN in the credential: the token refuses the login, so the
	// credential is what was read.
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	os.WriteFile(pinPath, []byte("wrong-pin\n"), 0o400)
	if err := execute(context.Background(), "--config", conf, "run"); err == nil || !strings.Contains(err.Error(), "PIN") {
		t.Fatalf("run with a wrong PIN credential: %v", err)
	}
	os.Chmod(pinPath, 0o600)
	os.WriteFile(pinPath, append(append([]byte(nil), tk.PIN...), '\n'), 0o400)

	sock := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- execute(ctx, "--config", conf, "run") }()
	readUntil := func(want string) string {
		t.Helper()
		buf := make([]byte, 4096)
		for {
			nc.SetReadDeadline(time.Now().Add(60 * time.Second))
			n, err := nc.Read(buf)
			if err != nil {
				t.Fatalf("no %s datagram: %v", want, err)
			}
			if msg := string(buf[:n]); strings.Contains(msg, want) {
				return msg
			}
		}
	}
	msg := readUntil("READY=1")
	if !strings.Contains(msg, "STATUS=connected to 1 of 1 bridges") {
		t.Errorf("READY datagram %q", msg)
	}
	// Ready means the bridge holds this server's connections.
	if idle := bridgeIdle(t, b); idle < 1 {
		t.Fatalf("READY=1 sent while the bridge has %g idle server connections", idle)
	}
	out, code := statusOf(t, "--config", conf, "status")
	if code != health.OK || !strings.HasPrefix(out, "OK: signet-server connected to 1 of 1 bridges") ||
		!strings.Contains(out, "bridge "+sl.Addr().String()+": 2 connected") {
		t.Fatalf("status (exit %d):\n%s", code, out)
	}

	cancel()
	readUntil("STOPPING=1")
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	// Stopped: the file says no bridge is connected.
	out, code = statusOf(t, "--config", conf, "status")
	if code != health.Critical || !strings.HasPrefix(out, "CRITICAL: signet-server connected to 0 of 1") {
		t.Fatalf("status after stop (exit %d):\n%s", code, out)
	}
	// A stale file is critical too.
	old := time.Now().Add(-2 * time.Minute)
	os.Chtimes(metrics, old, old)
	if out, code = statusOf(t, "--config", conf, "status"); code != health.Critical || !strings.Contains(out, "old (more than 1m0s)") {
		t.Fatalf("status of a stale file (exit %d):\n%s", code, out)
	}
	if out, code = statusOf(t, "status", "--metrics-file", filepath.Join(dir, "absent")); code != health.Critical {
		t.Fatalf("status without a file (exit %d):\n%s", code, out)
	}
}

func execute(ctx context.Context, args ...string) error {
	root := newRoot()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func statusOf(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return out.String(), 0
	}
	return out.String(), health.ExitCode(err)
}

func bridgeIdle(t *testing.T, b *bridge.Bridge) float64 {
	t.Helper()
	w := httptest.NewRecorder()
	b.MetricsHandler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	m, err := health.Parse(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	return m.Sum("signet_bridge_idle_server_connections")
}
