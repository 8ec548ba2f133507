package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/protocol"
)

// waitingClient opens a request that passes every check and then waits
// for a server (or, if one is there, is paired): header only, with a
// promised payload it does not send yet.
func waitingClient(t *testing.T, addr string, cert tls.Certificate, user string, payloadLen uint64) *tls.Conn {
	t.Helper()
	c, err := dialBridge(addr, cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m := protocol.NewMux(c, nil)
	if err := m.ChunkWriter().WriteChunk(protocol.Outer, rawRequest(1, fields("op", "sign-data", "user", user, "key", "k"), payloadLen)); err != nil {
		t.Fatal(err)
	}
	return c
}

// dropped fails unless the bridge closes c (without data) within 15 s.
func dropped(t *testing.T, c net.Conn, who string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n > 0 || err == nil || isTimeout(err) {
		t.Fatalf("%s: not dropped (%d bytes, %v)", who, n, err)
	}
}

func TestRequestsPerCN(t *testing.T) {
	h := startBridge(t, func(c *Config) {
		c.MaxRequestsPerCN = 2
		c.RequestsPerCN = map[string]int{"robot": 3}
	})
	p := getPKI()
	// No server: alice's two requests wait for one.
	waiting := []*tls.Conn{waitingClient(t, h.clientAddr, p.alice, "alice", 0), waitingClient(t, h.clientAddr, p.alice, "alice", 0)}
	eventually(t, "two waiting clients", func() bool { return h.metric("signet_bridge_clients_waiting") == 2 })
	dropped(t, waitingClient(t, h.clientAddr, p.alice, "alice", 0), "alice's third request")
	eventually(t, "the refusal to be counted", func() bool { return h.metric("signet_bridge_limits_hit_total", "limit", LimitRequestsPerCN) == 1 })
	if h.count(opUnknown, ResultDroppedCNLimit) != 1 {
		t.Fatal("the refusal is not in signet_bridge_requests_total")
	}
	// Other certificates are not affected; robot has a cap of its own.
	for range 3 {
		waiting = append(waiting, waitingClient(t, h.clientAddr, p.robot, "robot", 0))
	}
	waiting = append(waiting, waitingClient(t, h.clientAddr, p.bob, "bob", 0))
	eventually(t, "six waiting clients", func() bool { return h.metric("signet_bridge_clients_waiting") == 6 })
	dropped(t, waitingClient(t, h.clientAddr, p.robot, "robot", 0), "robot's fourth request")
	// The waiting clients give up and a server arrives: alice may send
	// again.
	for _, c := range waiting {
		c.Close()
	}
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	eventually(t, "a request of alice's once hers have ended", func() bool {
		res, err := doRequest(h.clientAddr, p.alice, fields("op", "list-users", "user", "alice"), nil, nil)
		return err == nil && res.code == protocol.CodeOK
	})
}

// TestSlowUpload: a client that trickles its payload below the minimum
// rate is dropped once the grace period is used up, and the server it
// held is released.
func TestSlowUpload(t *testing.T) {
	t.Parallel() // mostly waiting for its timeout
	// A grace long enough for the fast request below on a loaded machine.
	h := startBridge(t, func(c *Config) { c.MinTransferRate, c.TransferGrace = 2000, 2*time.Second })
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	p := getPKI()
	c := waitingClient(t, h.clientAddr, p.alice, "alice", 100_000)
	m := protocol.NewMux(c, nil)
	start := time.Now()
	var err error
	// 10 bytes every 50 ms: 280 bytes/s with the chunk headers, a
	// seventh of the minimum. Bounded:
	// 100 000 bytes would take 500 s; the bridge must cut it long before.
	for i := 0; i < 10_000 && err == nil; i++ {
		err = m.ChunkWriter().WriteChunk(protocol.Outer, make([]byte, 10))
		time.Sleep(50 * time.Millisecond)
		if time.Since(start) > 30*time.Second {
			t.Fatal("the slow client was still connected after 30 s")
		}
	}
	dropped(t, c, "the slow client")
	eventually(t, "the too_slow drop", func() bool { return h.count("sign-data", ResultTooSlow) == 1 })
	if h.metric("signet_bridge_limits_hit_total", "limit", LimitMinTransferRate) != 1 {
		t.Fatal("the limit hit is not counted")
	}
	if !strings.Contains(h.logs.String(), "below the minimum of 2000 bytes/s") {
		t.Errorf("the log does not say why:\n%s", h.logs.String())
	}
	// The server was released: a fast request goes through.
	if res, err := doRequest(h.clientAddr, p.alice, fields("op", "sign-data", "user", "alice", "key", "k"), make([]byte, 50_000), nil); err != nil || res.code != protocol.CodeOK {
		t.Fatalf("a fast request after the slow one: %v", err)
	}
}

// TestSlowHeader: a client that never finishes its request header is
// dropped by the rate limit before any pairing.
func TestSlowHeader(t *testing.T) {
	t.Parallel() // mostly waiting for its timeout
	h := startBridge(t, func(c *Config) { c.MinTransferRate, c.TransferGrace = 1000, 200*time.Millisecond })
	c, err := dialBridge(h.clientAddr, getPKI().alice)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := rawRequest(1, fields("op", "list-users", "user", "alice"), 0)
	m := protocol.NewMux(c, nil)
	// One chunk header announcing the request, then its bytes one at a
	// time, 100 ms apart (bounded by the request's length).
	hdr, _ := protocol.MakeChunkHeader(protocol.Outer, len(req))
	c.Write([]byte{byte(hdr >> 24), byte(hdr >> 16), byte(hdr >> 8), byte(hdr)})
	for _, b := range req {
		if _, err := c.Write([]byte{b}); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = m
	dropped(t, c, "the slow header")
	eventually(t, "the too_slow drop", func() bool { return h.count(opUnknown, ResultTooSlow) == 1 })
	if n := h.metric("signet_bridge_limits_hit_total", "limit", LimitMinTransferRate); n != 1 {
		t.Fatalf("the limit hit is counted %v times", n)
	}
	if h.metric("signet_bridge_pairing_wait_seconds") != 0 {
		t.Fatal("the slow client was paired")
	}
}

// TestSlowReader: a client that stops reading its reply is dropped by the
// rate limit on the bridge's writes, not after client_timeout.
func TestSlowReader(t *testing.T) {
	t.Parallel() // mostly waiting for its timeout
	h := startBridge(t, func(c *Config) {
		c.MinTransferRate, c.TransferGrace = 8<<20, time.Second
		c.ClientTimeout = time.Minute
	})
	ts := newTestServer(t, h.serverAddr)
	ts.replySize = 32 << 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	// A 32 MiB reply to a small request, which the client never reads:
	// kernel buffers take a few MiB, then the bridge's writes block.
	o, err := sendRequest(h.clientAddr, getPKI().alice, fields("op", "sign-data", "user", "alice", "key", "k"), make([]byte, 1000))
	if err != nil {
		t.Fatal(err)
	}
	defer o.conn.Close()
	eventually(t, "the too_slow drop", func() bool { return h.count("sign-data", ResultTooSlow) == 1 })
	if !strings.Contains(h.logs.String(), "the client read") {
		t.Errorf("the log does not say the client read too slowly:\n%s", h.logs.String())
	}
}

// TestRequestTimeout: a request that has not ended by request_timeout is
// cut, whatever its rate.
func TestRequestTimeout(t *testing.T) {
	t.Parallel() // mostly waiting for its timeout
	h := startBridge(t, func(c *Config) { c.RequestTimeout = 3 * time.Second })
	ts := newTestServer(t, h.serverAddr)
	ts.hold = make(chan struct{}) // the server never replies
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	// On a loaded machine the deadline may come before the inner session
	// is over; either way the request must end by it.
	if o, err := sendRequest(h.clientAddr, getPKI().alice, fields("op", "list-users", "user", "alice"), nil); err == nil {
		defer o.conn.Close()
		o.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := io.Copy(io.Discard, o.conn); isTimeout(err) {
			t.Fatal("the request past its deadline was not dropped")
		}
	}
	eventually(t, "the deadline drop", func() bool { return h.count("list-users", ResultDeadline) == 1 })
	if h.metric("signet_bridge_limits_hit_total", "limit", LimitRequestTimeout) != 1 {
		t.Fatal("the limit hit is not counted")
	}
	close(ts.hold)
}

// stallHandshakes opens n TCP connections to addr from local address
// laddr (nil: any) that never send a byte.
func stallHandshakes(t *testing.T, addr string, laddr net.Addr, n int) {
	t.Helper()
	d := net.Dialer{LocalAddr: laddr, Timeout: 5 * time.Second}
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

func TestHandshakeCaps(t *testing.T) {
	h := startBridge(t, func(c *Config) {
		c.MaxHandshakes, c.MaxHandshakesPerIP = 4, 2
		c.HandshakeTimeout = time.Minute // the stalled ones hold their slots
	})
	p := getPKI()
	hsCount := func(limit string) func() bool {
		return func() bool { return h.metric("signet_bridge_limits_hit_total", "limit", limit) >= 1 }
	}
	inProgress := func(port string, n float64) {
		t.Helper()
		eventually(t, "stalled handshakes to be running", func() bool {
			return h.metric("signet_bridge_tls_handshakes_in_progress", "port", port) == n
		})
	}
	// Two stalled handshakes from 127.0.0.1 fill its share.
	stallHandshakes(t, h.clientAddr, nil, 2)
	inProgress("client", 2)
	eventually(t, "a refused handshake from the same address", func() bool {
		c, err := dialBridge(h.clientAddr, p.alice)
		if err == nil {
			c.Close()
		}
		return err != nil && hsCount(LimitClientIPHandshakes)()
	})
	// Another address still gets through, until the port's cap is full.
	other := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	if c, err := (&net.Dialer{LocalAddr: other}).Dial("tcp", h.clientAddr); err != nil {
		t.Skipf("no second loopback address: %v", err)
	} else {
		c.Close()
	}
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wg := ts.run(ctx, 1)
	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: other, Timeout: 5 * time.Second}, Config: p.clientCfg("bridge.test", p.bob)}
	c, err := d.Dial("tcp", h.clientAddr)
	if err != nil {
		t.Fatalf("a client from another address was refused: %v", err)
	}
	c.Close()
	inProgress("client", 2) // the probes' handshakes are over
	stallHandshakes(t, h.clientAddr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}, 2)
	inProgress("client", 4)
	eventually(t, "the port's cap", func() bool {
		c, err := d.Dial("tcp", h.clientAddr)
		if err == nil {
			c.Close()
		}
		return err != nil && hsCount(LimitClientHandshakes)()
	})

	// The server port has a cap of its own: the client port's stalled
	// handshakes do not keep servers out, its own do.
	if _, err := doRequestFrom(h, p.alice); err == nil {
		t.Fatalf("alice got through a full client port: %v", h.b.lim.perIP)
	}
	cancel() // the test server stops dialing: only the stalled ones run
	wg.Wait()
	stallHandshakes(t, h.serverAddr, nil, 4)
	inProgress("server", 4)
	eventually(t, "a refused server handshake", func() bool {
		c, err := ts.dial()
		if err == nil {
			// Taken into the pool (the stalled handshakes are not all
			// running yet): give up after a moment and try again.
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, err = c.Read(make([]byte, 1))
			c.Close()
			if isTimeout(err) {
				return false
			}
		}
		return err != nil && hsCount(LimitServerHandshakes)()
	})
}

func doRequestFrom(h *harness, cert tls.Certificate) (*clientResult, error) {
	return doRequest(h.clientAddr, cert, fields("op", "list-users", "user", "alice"), nil, nil)
}

func TestPendingPairings(t *testing.T) {
	h := startBridge(t, func(c *Config) { c.MaxPendingPairings = 2 })
	p := getPKI()
	waitingClient(t, h.clientAddr, p.alice, "alice", 0)
	waitingClient(t, h.clientAddr, p.bob, "bob", 0)
	eventually(t, "two waiting clients", func() bool { return h.metric("signet_bridge_clients_waiting") == 2 })
	dropped(t, waitingClient(t, h.clientAddr, p.robot, "robot", 0), "a third waiting client")
	eventually(t, "the refusal to be counted", func() bool { return h.count("sign-data", ResultDroppedPending) == 1 })
	if h.metric("signet_bridge_limits_hit_total", "limit", LimitPendingPairings) != 1 {
		t.Fatal("the limit hit is not counted")
	}
}

var _ = errors.New
