package server_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/signet-project/signet/server"
)

func waitConnected(t *testing.T, d *server.Dialer, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if d.Connected() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("Connected() = %d, want %d", d.Connected(), want)
}

// Connected counts established connections only: none while the bridge is
// down (dials failing), the idle ones once it is up, none after it goes.
func TestDialerConnected(t *testing.T) {
	t.Parallel()
	bridgeTLS, srvTLS := testTLS(t)
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close() // nothing listens there yet
	d := &server.Dialer{Addr: addr, TLS: srvTLS, Idle: 2, Max: 4, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Serve: func(ctx context.Context, conn net.Conn) { conn.Read(make([]byte, 1)) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(100 * time.Millisecond) // failed dials
	if n := d.Connected(); n != 0 {
		t.Fatalf("Connected() = %d with no bridge", n)
	}
	b := startBridge(t, addr, bridgeTLS)
	b.accept(t, 5*time.Second)
	b.accept(t, 5*time.Second)
	waitConnected(t, d, 2)
	b.stop()
	waitConnected(t, d, 0)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
