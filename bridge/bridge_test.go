package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/metricsserver"
	"github.com/signet-project/signet/protocol"
)

func TestRelay(t *testing.T) {
	h := startBridge(t, nil)
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	p := getPKI()

	marker := []byte("PAYLOAD-MARKER-must-not-be-logged ")
	big := bytes.Repeat(marker, 300_000/len(marker)+1)[:300_000]
	for _, tc := range []struct {
		name    string
		f       protocol.Fields
		payload []byte
		want    []byte
	}{
		{"list-users", fields("op", "list-users", "user", "alice"), nil, []byte("alice\x00bob\x00")},
		{"sign-data 300 KB", fields("op", "sign-data", "user", "alice", "key", "k"), big, transform(big)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ts.seen())
			res, err := doRequest(h.clientAddr, p.alice, tc.f, tc.payload, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.code != protocol.CodeOK || !bytes.Equal(res.payload, tc.want) {
				t.Fatalf("code %v, payload of %d bytes", res.code, len(res.payload))
			}
			eventually(t, "the server to record the request", func() bool { return len(ts.seen()) == before+1 })
			sr := ts.seen()[before]

			// The server got R1‖R2 exactly as the client sent them, in one
			// chunk, then R3 in its own chunk, then R4 in chunks ≤ 4096,
			// all before any inner chunk (§2.5, §4.2 step 7).
			if !bytes.Equal(sr.head, res.sent) {
				t.Fatal("R1‖R2 changed on the way")
			}
			toS := chunks(t, sr.raw)
			if len(toS) < 2 || toS[0].Stream != protocol.Outer || !bytes.Equal(toS[0].Data, res.sent) {
				t.Fatal("first chunk to the server is not R1‖R2")
			}
			if toS[1].Stream != protocol.Outer || len(toS[1].Data) != 8 {
				t.Fatal("R3 is not its own 8-byte chunk")
			}
			var got int
			i := 2
			for ; got < len(tc.payload); i++ {
				c := toS[i]
				if c.Stream != protocol.Outer || len(c.Data) == 0 || len(c.Data) > 4096 {
					t.Fatalf("payload chunk %d: %s %d bytes", i, c.Stream, len(c.Data))
				}
				got += len(c.Data)
			}
			if got != len(tc.payload) || toS[i].Stream != protocol.Inner {
				t.Fatalf("payload chunks carry %d of %d bytes, then %s", got, len(tc.payload), toS[i].Stream)
			}
			if last := toS[len(toS)-1]; last.Stream != protocol.Inner || !last.IsEOF() {
				t.Fatal("the server's leg does not end with the client's inner EOF (no outer EOF in ordinary requests, §2.7)")
			}

			// Towards the client: every inner chunk before the first outer
			// chunk; the reply header in one chunk, the u64 in its own, the
			// payload in chunks ≤ 4096 that end exactly at its end, the MAC
			// in its own chunk, then the outer EOF (§2.5).
			toC := chunks(t, res.raw)
			seenOuter := false
			for _, c := range toC {
				if c.Stream == protocol.Outer {
					seenOuter = true
				} else if seenOuter {
					t.Fatal("inner chunk after outer data towards the client")
				}
			}
			oc := outerChunks(toC)
			rd := bytes.NewReader(oc[0].Data)
			if _, err := protocol.ReadRelayReplyHeader(rd); err != nil || rd.Len() != 0 {
				t.Fatalf("first outer chunk is not exactly a reply header: %v, %d bytes left", err, rd.Len())
			}
			if len(oc[1].Data) != 8 {
				t.Fatal("reply length not in its own 8-byte chunk")
			}
			got = 0
			j := 2
			for ; got < len(tc.want); j++ {
				if n := len(oc[j].Data); n == 0 || n > 4096 {
					t.Fatalf("reply payload chunk of %d bytes", n)
				}
				got += len(oc[j].Data)
			}
			if got != len(tc.want) || len(oc[j].Data) != 64 || !oc[j+1].IsEOF() || j+2 != len(oc) {
				t.Fatalf("reply tail: payload %d of %d, then %d chunks", got, len(tc.want), len(oc)-j)
			}
		})
	}
	if n := h.count("list-users", ResultRelayed); n != 1 {
		t.Errorf("relayed list-users = %v", n)
	}
	if n := h.count("sign-data", ResultRelayed); n != 1 {
		t.Errorf("relayed sign-data = %v", n)
	}
	if n := h.metric("signet_bridge_forwarded_bytes_total", "direction", "client_to_server"); n < 300_000 {
		t.Errorf("client_to_server bytes = %v", n)
	}
	if n := h.metric("signet_bridge_forwarded_bytes_total", "direction", "server_to_client"); n < 300_000 {
		t.Errorf("server_to_client bytes = %v", n)
	}
	eventually(t, "the log lines", func() bool { return strings.Count(h.logs.String(), `"msg":"request relayed"`) == 2 })
	if strings.Contains(h.logs.String(), "PAYLOAD-MARKER") {
		t.Error("payload bytes in the log")
	}
}

func TestRefusals(t *testing.T) {
	h := startBridge(t, func(c *Config) { c.OpLimits = map[string]uint64{"sign-data": 1000} })
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	p := getPKI()

	withBool := func(f protocol.Fields, k string) protocol.Fields { f.SetBool(k, true); return f }
	rpmNEVRA := fields("op", "sign-rpm", "user", "alice", "key", "k", "rpm-name", "n", "rpm-version", "1", "rpm-release", "1", "rpm-arch", "noarch")
	for _, tc := range []struct {
		name    string
		cert    tls.Certificate
		req     []byte
		payload []byte
		op      string
		result  string
	}{
		{"CN is not user", p.bob, rawRequest(1, fields("op", "list-users", "user", "alice"), 0), nil, "list-users", ResultDroppedCNMismatch},
		{"field not whitelisted", p.alice, rawRequest(1, fields("op", "list-users", "user", "alice", "key", "k"), 0), nil, "list-users", ResultDroppedInvalid},
		{"bool of the wrong form", p.alice, rawRequest(1, fields("op", "new-user", "user", "alice", "name", "x", "admin", "yes"), 0), nil, "new-user", ResultDroppedInvalid},
		{"payload above the op's limit", p.alice, rawRequest(1, fields("op", "import-key", "user", "alice", "key", "k"), protocol.MiB+1), nil, "import-key", ResultDroppedInvalid},
		{"payload where the op has none", p.alice, rawRequest(1, fields("op", "list-users", "user", "alice"), 1), []byte("x"), "list-users", ResultDroppedInvalid},
		{"payload above the configured limit", p.alice, rawRequest(1, fields("op", "sign-data", "user", "alice", "key", "k"), 2000), make([]byte, 2000), "sign-data", ResultDroppedInvalid},
		{"unknown op", p.alice, rawRequest(1, fields("op", "frobnicate", "user", "alice"), 0), nil, opUnknown, ResultDroppedInvalid},
		{"no op", p.alice, rawRequest(1, fields("user", "alice"), 0), nil, opUnknown, ResultDroppedInvalid},
		{"version 2", p.alice, rawRequest(2, fields("op", "list-users", "user", "alice"), 0), nil, opUnknown, ResultDroppedInvalid},
		{"malformed field block", p.alice, []byte{0, 0, 0, 1, 1, 0}, nil, opUnknown, ResultDroppedInvalid},
		{"koji-instance", p.alice, rawRequest(1, fields("op", "sign-rpm", "user", "alice", "key", "k", "koji-instance", "fedora"), 3), []byte("rpm"), "sign-rpm", ResultDroppedKoji},
		{"sign-rpm fetched from Koji", p.alice, rawRequest(1, rpmNEVRA, 0), nil, "sign-rpm", ResultDroppedKoji},
		{"import-signature", p.alice, rawRequest(1, withBool(fields("op", "sign-rpm", "user", "alice", "key", "k"), "import-signature"), 3), []byte("rpm"), "sign-rpm", ResultDroppedKoji},
		{"sign-rpms with koji-instance", p.alice, rawRequest(1, fields("op", "sign-rpms", "user", "alice", "key", "k", "koji-instance", "fedora"), 0), nil, "sign-rpms", ResultDroppedKoji},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.count(tc.op, tc.result)
			if _, err := expectDrop(h.clientAddr, tc.cert, tc.req, tc.payload); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the refusal to be counted", func() bool { return h.count(tc.op, tc.result) == before+1 })
			// The bridge goes on serving.
			res, err := doRequest(h.clientAddr, p.alice, fields("op", "list-users", "user", "alice"), nil, nil)
			if err != nil || res.code != protocol.CodeOK {
				t.Fatalf("next request: %v", err)
			}
		})
	}
	// No refused request reached the server.
	for _, r := range ts.seen() {
		if r.op != "list-users" {
			t.Errorf("the server saw a refused %s request", r.op)
		}
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "it needs Koji and this bridge has no Koji instance configured") {
		t.Error("no clear log line for the Koji refusal")
	}
	if !strings.Contains(logs, `"result":"dropped_cn_mismatch"`) || !strings.Contains(logs, `"client_cn":"bob"`) {
		t.Error("no log line for the CN mismatch")
	}

	t.Run("client certificate from another CA", func(t *testing.T) {
		c, err := dialBridge(h.clientAddr, p.otherCA)
		if err == nil {
			// TLS 1.3: the client learns of the refusal on its first read.
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Fatal("handshake with an untrusted client certificate succeeded")
		}
	})
}

func TestProxyAndLenientCN(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		cert tls.Certificate
		ok   bool
	}{
		{"proxy CN may act for others", func(c *Config) { c.ProxyCNs = []string{"robot"} }, getPKI().robot, true},
		{"other CNs may not", func(c *Config) { c.ProxyCNs = []string{"robot"} }, getPKI().bob, false},
		{"lenient", func(c *Config) { c.LenientCN = true }, getPKI().bob, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startBridge(t, tc.mod)
			ts := newTestServer(t, h.serverAddr)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ts.run(ctx, 1)
			f := fields("op", "list-users", "user", "alice")
			if tc.ok {
				if _, err := doRequest(h.clientAddr, tc.cert, f, nil, nil); err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, err := expectDrop(h.clientAddr, tc.cert, rawRequest(1, f, 0), nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPairingTimeoutThenLateServer(t *testing.T) {
	t.Parallel() // mostly waiting for its timeout
	const bound = 2 * time.Second
	h := startBridge(t, func(c *Config) { c.PairingTimeout = bound })
	p := getPKI()
	req := rawRequest(1, fields("op", "list-users", "user", "alice"), 0)
	d, err := expectDrop(h.clientAddr, p.alice, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d < bound-100*time.Millisecond || d > bound+5*time.Second {
		t.Fatalf("dropped after %v, bound %v", d, bound)
	}
	eventually(t, "the pairing timeout to be counted", func() bool { return h.count("list-users", ResultPairingTimeout) == 1 })
	if n := h.metric("signet_bridge_pairing_wait_seconds"); n != 1 {
		t.Errorf("pairing wait observations = %v", n)
	}

	// A client that is waiting gets a server that connects later.
	done := make(chan error, 1)
	go func() {
		_, err := doRequest(h.clientAddr, p.alice, fields("op", "list-users", "user", "alice"), nil, nil)
		done <- err
	}()
	eventually(t, "the client to wait", func() bool { return h.metric("signet_bridge_clients_waiting") == 1 })
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if h.metric("signet_bridge_clients_waiting") != 0 {
		t.Error("clients_waiting not back to 0")
	}
	if !strings.Contains(h.logs.String(), "no server connection became free in time") {
		t.Error("no log line for the pairing timeout")
	}
}

func TestDeadIdleServerSkipped(t *testing.T) {
	h := startBridge(t, nil)
	ts := newTestServer(t, h.serverAddr)
	p := getPKI()
	// Two idle connections; the older one goes away while idle.
	c1, err := ts.dial()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "one idle server", func() bool { return h.metric("signet_bridge_idle_server_connections") == 1 })
	c2, err := ts.dial()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "two idle servers", func() bool { return h.metric("signet_bridge_idle_server_connections") == 2 })
	c1.Close()
	eventually(t, "the dead one to leave the pool", func() bool { return h.metric("signet_bridge_idle_server_connections") == 1 })
	errc := make(chan error, 1)
	go func() { errc <- ts.serveOne(c2) }()
	if _, err := doRequest(h.clientAddr, p.alice, fields("op", "list-users", "user", "alice"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// TestPoolSkipsDeadOnClaim checks the other path: a connection that died
// while idle but is still listed is found dead when claimed, and skipped.
func TestPoolSkipsDeadOnClaim(t *testing.T) {
	h := startBridge(t, nil)
	pl := h.b.pool
	mk := func() (*tls.Conn, *tls.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		acc := make(chan *tls.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				acc <- nil
				return
			}
			tc := tls.Server(c, h.b.tls)
			tc.Handshake()
			acc <- tc
		}()
		d := tls.Dialer{Config: getPKI().clientCfg("bridge.test", getPKI().server)}
		cc, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return <-acc, cc.(*tls.Conn)
	}
	deadB, deadS := mk()
	defer deadS.Close()
	liveB, liveS := mk()
	defer liveS.Close()
	dead := newServerConn(deadB)
	dead.err = io.EOF // as if its idle Read had ended, unnoticed yet
	close(dead.done)
	pl.mu.Lock()
	pl.idle = append(pl.idle, dead)
	pl.mu.Unlock()
	live := newServerConn(liveB)
	pl.add(live)
	got, err := pl.get(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got != live {
		t.Fatal("the dead connection was handed out")
	}
	got.release()
}

func TestConcurrentClients(t *testing.T) {
	// One certificate, one address: room for all 32 at once.
	h := startBridge(t, func(c *Config) { c.MaxRequestsPerCN, c.MaxHandshakesPerIP = 32, 32 })
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 4)
	p := getPKI()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, 1000+i*997)
			rand.Read(payload)
			res, err := doRequest(h.clientAddr, p.alice, fields("op", "sign-data", "user", "alice", "key", "k"), payload, nil)
			if err == nil && !bytes.Equal(res.payload, transform(payload)) {
				err = fmt.Errorf("client %d: wrong reply", i)
			}
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	eventually(t, "32 relayed requests", func() bool { return h.count("sign-data", ResultRelayed) == 32 })
}

func TestGracefulShutdown(t *testing.T) {
	h := startBridge(t, nil)
	ts := newTestServer(t, h.serverAddr)
	ts.hold = make(chan struct{})
	ts.started = make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	p := getPKI()

	res := make(chan error, 1)
	go func() {
		r, err := doRequest(h.clientAddr, p.alice, fields("op", "sign-data", "user", "alice", "key", "k"), []byte("data"), nil)
		if err == nil && !bytes.Equal(r.payload, transform([]byte("data"))) {
			err = fmt.Errorf("wrong reply")
		}
		res <- err
	}()
	<-ts.started // the request is in flight
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	shut := make(chan error, 1)
	go func() { shut <- h.b.Shutdown(sctx) }()

	// New connections are refused on both ports.
	for _, addr := range []string{h.clientAddr, h.serverAddr} {
		eventually(t, "the listener at "+addr+" to close", func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return true
			}
			c.Close()
			return false
		})
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}
	close(ts.hold)
	if err := <-res; err != nil {
		t.Fatalf("request in flight: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if h.count("sign-data", ResultRelayed) != 1 {
		t.Error("the in-flight request was not counted as relayed")
	}
}

func TestShutdownDeadline(t *testing.T) {
	h := startBridge(t, nil)
	ts := newTestServer(t, h.serverAddr)
	ts.hold = make(chan struct{})
	defer close(ts.hold)
	ts.started = make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	res := make(chan error, 1)
	go func() {
		_, err := doRequest(h.clientAddr, getPKI().alice, fields("op", "list-users", "user", "alice"), nil, nil)
		res <- err
	}()
	<-ts.started
	sctx, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer scancel()
	if err := h.b.Shutdown(sctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	if err := <-res; err == nil {
		t.Fatal("the request survived a forced shutdown")
	}
}

func TestSignRPMs(t *testing.T) {
	h := startBridge(t, nil)
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	p := getPKI()
	big := make([]byte, 50_000)
	rand.Read(big)
	rpms := [][]byte{[]byte("rpm one"), big, []byte("last")}
	res, err := doRequest(h.clientAddr, p.alice, fields("op", "sign-rpms", "user", "alice", "key", "k"), nil, rpms)
	if err != nil {
		t.Fatal(err)
	}
	if res.code != protocol.CodeOK || len(res.subs) != len(rpms) {
		t.Fatalf("%v, %d sub-replies", res.code, len(res.subs))
	}
	for i, r := range rpms {
		if !bytes.Equal(res.subs[uint32(i)], transform(r)) {
			t.Errorf("sub-reply %d differs", i)
		}
	}
	// The client's leg ends with one outer EOF after the last sub-reply.
	oc := outerChunks(chunks(t, res.raw))
	if !oc[len(oc)-1].IsEOF() || len(oc[len(oc)-2].Data) != 64 {
		t.Fatal("sub-phase does not end with MAC then outer EOF")
	}
	eventually(t, "the relay to be counted", func() bool { return h.count("sign-rpms", ResultRelayed) == 1 })

	// A sub-request with an empty payload asks for Koji: dropped.
	// The client sees its stream end without the sub-replies (or an error).
	res, err = doRequest(h.clientAddr, p.alice, fields("op", "sign-rpms", "user", "alice", "key", "k"), nil, [][]byte{[]byte("ok"), {}})
	if err == nil && len(res.subs) == 2 {
		t.Fatal("a sub-request for a Koji RPM went through")
	}
	eventually(t, "the Koji drop to be counted", func() bool { return h.count("sign-rpms", ResultDroppedKoji) == 1 })
}

func TestServerFromAnotherCARefused(t *testing.T) {
	h := startBridge(t, nil)
	d := tls.Dialer{Config: getPKI().clientCfg("bridge.test", getPKI().otherCA)}
	c, err := d.Dial("tcp", h.serverAddr)
	if err == nil {
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("a server with an untrusted certificate was accepted")
	}
	if h.metric("signet_bridge_idle_server_connections") != 0 {
		t.Fatal("it was put in the pool")
	}
}

func TestMetricsEndpoint(t *testing.T) {
	h := startBridge(t, nil)
	ln, err := metricsserver.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.b.ServeMetrics(ln)
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	p := getPKI()
	if _, err := doRequest(h.clientAddr, p.alice, fields("op", "list-users", "user", "alice"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := expectDrop(h.clientAddr, p.bob, rawRequest(1, fields("op", "list-users", "user", "alice"), 0), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an idle server again", func() bool { return h.metric("signet_bridge_idle_server_connections") == 1 })
	want := []string{
		`signet_bridge_requests_total{op="list-users",result="relayed"} 1`,
		`signet_bridge_requests_total{op="list-users",result="dropped_cn_mismatch"} 1`,
		`signet_bridge_pairing_wait_seconds_count 1`,
		`signet_bridge_idle_server_connections 1`,
		`signet_bridge_clients_waiting 0`,
		`signet_bridge_forwarded_bytes_total{direction="client_to_server"}`,
		`signet_bridge_forwarded_bytes_total{direction="server_to_client"}`,
	}
	var body string
	eventually(t, "the scrape to show the counters", func() bool {
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
}

// The address checks themselves are internal/metricsserver's tests.
func TestMetricsListenerMustBeLoopback(t *testing.T) {
	// A listener opened elsewhere is refused too.
	h := startBridge(t, nil)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skip(err)
	}
	if err := h.b.ServeMetrics(ln); err == nil {
		t.Error("ServeMetrics served on a non-loopback listener")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	p := getPKI()
	names := []string{"server.test"}
	for name, cfg := range map[string]Config{
		"no certificate":    {CA: p.pool, ServerNames: names},
		"no CA":             {Certificate: p.bridge, ServerNames: names},
		"no server names":   {Certificate: p.bridge, CA: p.pool},
		"blank server name": {Certificate: p.bridge, CA: p.pool, ServerNames: []string{" "}},
		"limit above table": {Certificate: p.bridge, CA: p.pool, ServerNames: names, OpLimits: map[string]uint64{"import-key": 2 * protocol.MiB}},
		"limit, unknown op": {Certificate: p.bridge, CA: p.pool, ServerNames: names, OpLimits: map[string]uint64{"frobnicate": 1}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
