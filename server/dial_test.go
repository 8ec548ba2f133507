package server_test

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testpki"
	"github.com/signet-project/signet/server"
)

// testTLS makes a pair of TLS configurations: the bridge side with a
// certificate for 127.0.0.1, the server side trusting its CA.
func testTLS(t *testing.T) (bridge, srv *tls.Config) {
	t.Helper()
	ca := testpki.New(t, "test CA")
	c := ca.MustIssue(t, testpki.Leaf{CN: "bridge", IPs: testpki.Loopback, EKU: testpki.Server})
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}}, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}
}

// fakeBridge accepts the server's connections and hands them out.
type fakeBridge struct {
	ln    net.Listener
	conns chan net.Conn
	mu    sync.Mutex
	all   []net.Conn
}

func startBridge(t *testing.T, addr string, cfg *tls.Config) *fakeBridge {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old listener's port may take a moment to free
		if ln, err = tls.Listen("tcp", addr, cfg); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBridge{ln: ln, conns: make(chan net.Conn, 64)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if err := c.(*tls.Conn).Handshake(); err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			b.all = append(b.all, c)
			b.mu.Unlock()
			b.conns <- c
		}
	}()
	return b
}

func (b *fakeBridge) stop() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.all {
		c.Close()
	}
}

func (b *fakeBridge) accept(t *testing.T, within time.Duration) net.Conn {
	t.Helper()
	select {
	case c := <-b.conns:
		return c
	case <-time.After(within):
		t.Fatalf("the server did not connect within %v", within)
		return nil
	}
}

func (b *fakeBridge) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-b.conns:
		t.Fatal("the server opened a connection beyond its limits")
	case <-time.After(within):
	}
}

func waitStats(t *testing.T, d *server.Dialer, want server.Stats) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if d.Stats() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("stats = %+v, want %+v", d.Stats(), want)
}

func TestDialerPoolAndReconnect(t *testing.T) {
	t.Parallel()
	bridgeTLS, srvTLS := testTLS(t)
	b := startBridge(t, "127.0.0.1:0", bridgeTLS)
	addr := b.ln.Addr().String()
	release := make(chan struct{})
	d := &server.Dialer{Addr: addr, TLS: srvTLS, Idle: 2, Max: 3, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Serve: func(ctx context.Context, conn net.Conn) {
			buf := make([]byte, 1)
			if _, err := conn.Read(buf); err != nil {
				return
			}
			select { // a request in progress
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	c1, c2 := b.accept(t, 5*time.Second), b.accept(t, 5*time.Second)
	b.none(t, 100*time.Millisecond)
	waitStats(t, d, server.Stats{Idle: 2, Total: 2})

	// A request arrives on one: another is dialed to keep two idle.
	c1.Write([]byte{0})
	b.accept(t, 5*time.Second)
	waitStats(t, d, server.Stats{Idle: 2, Total: 3})
	// A second request: the cap of 3 allows no replacement.
	c2.Write([]byte{0})
	waitStats(t, d, server.Stats{Idle: 1, Total: 3})
	b.none(t, 100*time.Millisecond)
	// Requests finish: back to two idle.
	close(release)
	waitStats(t, d, server.Stats{Idle: 2, Total: 2})

	// The bridge restarts: the server comes back on its own.
	b.stop()
	time.Sleep(300 * time.Millisecond) // several failed dials
	b2 := startBridge(t, addr, bridgeTLS)
	defer b2.stop()
	b2.accept(t, 5*time.Second) // within 5 s, as the service must
	b2.accept(t, 5*time.Second)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
