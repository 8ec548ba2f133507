package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-project/signet/protocol"
)

// proc is a running signet-bridge process (this test binary as main) with
// the certificates writePKI made.
type proc struct {
	client, server, metrics string
	dir                     string
	pool                    *x509.CertPool
	logs                    *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProc runs the bridge with extra configuration lines and waits until
// its metrics endpoint answers. It is stopped with SIGTERM when t ends.
func startProc(t *testing.T, extra string) *proc {
	t.Helper()
	p := &proc{client: freePort(t), server: freePort(t), metrics: freePort(t), logs: &lockedBuffer{}}
	cfg := writeConfig(t, fmt.Sprintf("client_listen = %q\nserver_listen = %q\nmetrics_listen = %q\nshutdown_timeout = \"2s\"\n%s",
		p.client, p.server, p.metrics, extra), "")
	p.dir = filepath.Dir(cfg)
	ca, err := os.ReadFile(filepath.Join(p.dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	p.pool = x509.NewCertPool()
	p.pool.AppendCertsFromPEM(ca)
	cmd := exec.Command(os.Args[0], "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "SIGNET_BRIDGE_AS_MAIN=1")
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("bridge log:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := p.scrape(); err == nil {
			return p
		}
		select {
		case <-done:
			t.Fatalf("the bridge exited:\n%s", p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bridge did not come up:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) scrape() (string, error) {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitMetric waits until the scrape holds line (a whole sample line).
func (p *proc) waitMetric(t *testing.T, line string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		body, _ = p.scrape()
		for _, l := range strings.Split(body, "\n") {
			if l == line {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("metrics never showed %q:\n%s", line, grepLines(body, "signet_bridge_"))
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// cert loads one of writePKI's certificates ("server", "alice").
func (p *proc) cert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dial opens a TLS connection to addr (either port) as name.
func (p *proc) dial(t *testing.T, addr, name string) *tls.Conn {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config: &tls.Config{RootCAs: p.pool, ServerName: "bridge.test", Certificates: []tls.Certificate{p.cert(t, name)}, MinVersion: tls.VersionTLS12}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*tls.Conn)
}

// sendRequest writes a request header (R1‖R2‖R3, no payload) for op as user
// on c, in the chunk layout a Sigul client uses.
func sendRequest(t *testing.T, c net.Conn, op, user string) {
	t.Helper()
	var f protocol.Fields
	f.SetStr("op", op)
	f.SetStr("user", user)
	h, err := protocol.NewRequestHeader(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := protocol.NewMux(c, nil)
	if _, err := protocol.WriteRequest(m.Writer(protocol.Outer), h, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
}

// closedWithin reads from c until it ends and fails unless it ends within
// d, without data: the bridge dropped it.
func closedWithin(t *testing.T, c net.Conn, d time.Duration, who string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(make([]byte, 1))
	if n > 0 {
		t.Fatalf("%s received data", who)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the bridge kept the connection open for %s", who, d)
	}
}

// TestProcessServerIdentity (issue 11, finding 1) runs the real bridge: a
// user's certificate that dials the server port is closed at once and
// gets no client's request, the refusal is counted, and the start-up log
// names server_names; a server's certificate on the client port is dropped
// before its request reaches a server.
func TestProcessServerIdentity(t *testing.T) {
	p := startProc(t, `pairing_timeout = "2s"`)
	if !strings.Contains(p.logs.String(), `"server_names":["server.test"]`) {
		t.Errorf("the start-up log does not list server_names:\n%s", p.logs.String())
	}

	// alice poses as a server, then alice sends a request.
	imp := p.dial(t, p.server, "alice")
	defer imp.Close()
	cl := p.dial(t, p.client, "alice")
	defer cl.Close()
	sendRequest(t, cl, "list-users", "alice")
	closedWithin(t, imp, 10*time.Second, "the impersonator")
	p.waitMetric(t, `signet_bridge_server_connections_refused_total{reason="identity"} 1`)
	closedWithin(t, cl, 10*time.Second, "the client (no server to pair with)")
	p.waitMetric(t, `signet_bridge_requests_total{op="list-users",result="pairing_timeout"} 1`)

	// The server's certificate on the client port, while a real server
	// waits: the request must not reach it.
	srv := p.dial(t, p.server, "server")
	defer srv.Close()
	p.waitMetric(t, `signet_bridge_idle_server_connections 1`)
	cl2 := p.dial(t, p.client, "server")
	defer cl2.Close()
	sendRequest(t, cl2, "list-users", "server.test")
	closedWithin(t, cl2, 10*time.Second, "the server certificate's client connection")
	p.waitMetric(t, `signet_bridge_requests_total{op="unknown",result="dropped_server_cert"} 1`)
	srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := srv.Read(make([]byte, 1)); n > 0 {
		t.Fatal("the request of a server certificate reached the server")
	}
}

var _ = context.Background
