package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
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

	"github.com/signet-project/signet/internal/testenv"
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
	testenv.SkipShort(t, "runs signet-bridge as a process")
	a := freeAddrs(t, 3)
	p := &proc{client: a[0], server: a[1], metrics: a[2], logs: &lockedBuffer{}}
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

// sinkServer keeps one connection with the server certificate at the
// bridge's server port, reading and dropping whatever it is sent and never
// answering, until ctx ends.
func (p *proc) sinkServer(t *testing.T, ctx context.Context) {
	t.Helper()
	go func() {
		for ctx.Err() == nil {
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
				Config: &tls.Config{RootCAs: p.pool, ServerName: "bridge.test", Certificates: []tls.Certificate{p.cert(t, "server")}}}
			c, err := d.DialContext(ctx, "tcp", p.server)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			stop := context.AfterFunc(ctx, func() { c.Close() })
			io.Copy(io.Discard, c)
			stop()
			c.Close()
		}
	}()
}

// header writes R1‖R2‖R3 for a sign-data request of payloadLen bytes as
// user, as one outer chunk.
func header(t *testing.T, c net.Conn, user string, payloadLen uint64) *protocol.Mux {
	t.Helper()
	var f protocol.Fields
	f.SetStr("op", "sign-data")
	f.SetStr("user", user)
	f.SetStr("key", "k")
	h, err := protocol.NewRequestHeader(f, payloadLen)
	if err != nil {
		t.Fatal(err)
	}
	m := protocol.NewMux(c, nil)
	b := append(h.HeaderBytes(), make([]byte, 8)...)
	binary.BigEndian.PutUint64(b[len(b)-8:], payloadLen)
	if err := m.ChunkWriter().WriteChunk(protocol.Outer, b); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestProcessLimits (issue 11, finding 5) runs the real bridge with small
// limits and slow clients: a second request of one certificate, a request
// beyond the pending-pairing bound, a trickled upload, a request past its
// overall deadline and a handshake beyond one address's share are each
// cut off (within seconds, where the old timeouts allowed minutes) and
// counted in signet_bridge_limits_hit_total.
func TestProcessLimits(t *testing.T) {
	p := startProc(t, `pairing_timeout = "60s"
max_requests_per_cn = 1
max_pending_pairings = 1
min_transfer_rate = 2000
transfer_grace = "2s"
request_timeout = "3s"
handshake_timeout = "60s"
max_handshakes_per_ip = 2`)
	// No server yet: alice's request waits for one.
	a := p.dial(t, p.client, "alice")
	defer a.Close()
	header(t, a, "alice", 0)
	p.waitMetric(t, `signet_bridge_clients_waiting 1`)

	// A second request of alice's: refused at once.
	a2 := p.dial(t, p.client, "alice")
	defer a2.Close()
	closedWithin(t, a2, 10*time.Second, "alice's second request")
	p.waitMetric(t, `signet_bridge_limits_hit_total{limit="requests_per_cn"} 1`)

	// bob's request would be the second waiting one: refused.
	b := p.dial(t, p.client, "bob")
	defer b.Close()
	header(t, b, "bob", 0)
	closedWithin(t, b, 10*time.Second, "bob's request beyond max_pending_pairings")
	p.waitMetric(t, `signet_bridge_limits_hit_total{limit="pending_pairings"} 1`)

	// A server arrives and gets alice's request, which then never ends:
	// the overall deadline cuts it (a server that never answers would
	// otherwise hold it for server_timeout).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.sinkServer(t, ctx)
	closedWithin(t, a, 10*time.Second, "alice's request past request_timeout")
	p.waitMetric(t, `signet_bridge_limits_hit_total{limit="request_timeout"} 1`)

	// bob trickles a 100 kB payload at 280 bytes/s with the chunk headers
	// (a seventh of the minimum); bounded: the loop gives up after 10 s.
	b2 := p.dial(t, p.client, "bob")
	defer b2.Close()
	m := header(t, b2, "bob", 100_000)
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if err := m.ChunkWriter().WriteChunk(protocol.Outer, make([]byte, 10)); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	closedWithin(t, b2, 5*time.Second, "bob's trickled upload")
	p.waitMetric(t, `signet_bridge_limits_hit_total{limit="min_transfer_rate"} 1`)
	p.waitMetric(t, `signet_bridge_requests_total{op="sign-data",result="too_slow"} 1`)

	// Two TCP connections from 127.0.0.1 that never start TLS hold this
	// address's share of handshakes: a third is refused at once.
	for range 2 {
		c, err := net.Dial("tcp", p.client)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	p.waitMetric(t, `signet_bridge_tls_handshakes_in_progress{port="client"} 2`)
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config: &tls.Config{RootCAs: p.pool, ServerName: "bridge.test", Certificates: []tls.Certificate{p.cert(t, "alice")}}}
	if c, err := d.Dial("tcp", p.client); err == nil {
		c.Close()
		t.Fatal("a handshake beyond max_handshakes_per_ip was accepted")
	}
	p.waitMetric(t, `signet_bridge_limits_hit_total{limit="client_ip_handshakes"} 1`)
}
