package bridge

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/signet-project/signet/protocol"
)

// runReuseServer starts ts with one connection at a time and stops it at
// the end of the test, or when the returned function is called.
func runReuseServer(t *testing.T, ts *testServer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	wg := ts.run(ctx, 1)
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

// signData sends sign-data for payload through the bridge and checks the
// test server's answer.
func signData(t *testing.T, h *harness, payload []byte) {
	t.Helper()
	res, err := doRequest(h.clientAddr, getPKI().alice, fields("op", "sign-data", "user", "alice", "key", "k"), payload, nil)
	if err != nil {
		t.Fatalf("sign-data: %v", err)
	}
	if res.code != protocol.CodeOK || !bytes.Equal(res.payload, transform(payload)) {
		t.Fatalf("sign-data: code %d, payload of %d bytes", res.code, len(res.payload))
	}
}

// TestServerConnReuse: a server that negotiates the reuse extension gets
// request after request on one connection (ordinary ones and sign-rpms),
// each answered right; every request the bridge forwards ends with its
// outer and inner EOF markers, and the metrics count the reuse.
func TestServerConnReuse(t *testing.T) {
	t.Parallel()
	h := startBridge(t, nil)
	ts := newTestServer(t, h.serverAddr)
	ts.reuse = true
	stop := runReuseServer(t, ts)

	const n = 6
	for i := range n {
		switch i % 3 {
		case 0:
			signData(t, h, bytes.Repeat([]byte{byte(i)}, 10000+i))
		case 1:
			res, err := doRequest(h.clientAddr, getPKI().alice, fields("op", "list-users", "user", "alice"), nil, nil)
			if err != nil || res.code != protocol.CodeOK || string(res.payload) != "alice\x00bob\x00" {
				t.Fatalf("request %d, list-users: %+v, %v", i, res, err)
			}
		case 2:
			rpms := [][]byte{[]byte(fmt.Sprint("rpm a", i)), bytes.Repeat([]byte("b"), 9000)}
			res, err := doRequest(h.clientAddr, getPKI().alice, fields("op", "sign-rpms", "user", "alice", "key", "k"), nil, rpms)
			if err != nil || res.code != protocol.CodeOK || len(res.subs) != 2 {
				t.Fatalf("request %d, sign-rpms: %+v, %v", i, res, err)
			}
			for id, p := range rpms {
				if !bytes.Equal(res.subs[uint32(id)], transform(p)) {
					t.Fatalf("request %d, sign-rpms item %d: wrong answer", i, id)
				}
			}
		}
	}
	if d := ts.dials.Load(); d != 1 {
		t.Fatalf("the server made %d connections for %d requests, want 1", d, n)
	}
	seen := ts.seen()
	if len(seen) != n {
		t.Fatalf("the server saw %d requests, want %d", len(seen), n)
	}
	for i, s := range seen {
		// What the bridge sent for this request ends with its two EOF
		// markers; for an ordinary request the outer EOF follows the
		// payload at once.
		cs := chunks(t, s.raw)
		var eofs []protocol.Stream
		for _, c := range cs {
			if c.IsEOF() {
				eofs = append(eofs, c.Stream)
			}
		}
		if len(eofs) != 2 || !cs[len(cs)-1].IsEOF() || eofs[0] == eofs[1] {
			t.Fatalf("request %d (%s): EOF markers %v, last chunk %v", i, s.op, eofs, cs[len(cs)-1])
		}
		if s.op != "sign-rpms" && eofs[0] != protocol.Outer {
			t.Fatalf("request %d (%s): the outer EOF did not come right after the request", i, s.op)
		}
	}
	if got := h.metric("signet_bridge_reused_server_connection_requests_total"); got != n-1 {
		t.Fatalf("reused-connection requests = %v, want %d", got, n-1)
	}
	if got := h.metric("signet_bridge_server_connections_returned_total"); got != n {
		t.Fatalf("connections returned = %v, want %d", got, n)
	}
	// The connection waits in the pool again, watched: when the server
	// goes away, the bridge notices and forgets it.
	if got := h.metric("signet_bridge_idle_server_connections"); got != 1 {
		t.Fatalf("idle server connections = %v, want 1", got)
	}
	stop()
	eventually(t, "the closed connection to leave the pool", func() bool {
		return h.metric("signet_bridge_idle_server_connections") == 0
	})
	if !bytes.Contains([]byte(h.logs.String()), []byte("idle server connection lost")) {
		t.Fatal("the lost idle connection was not logged")
	}
}

// TestServerConnReuseFallback: without the extension on either side, each
// request gets a connection of its own, as with Sigul's programs.
func TestServerConnReuseFallback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		bridgeOff   bool
		serverOffer bool
	}{
		{"server does not offer it", false, false},
		{"bridge switched off", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startBridge(t, func(c *Config) { c.NoServerReuse = tc.bridgeOff })
			ts := newTestServer(t, h.serverAddr)
			ts.reuse = tc.serverOffer
			runReuseServer(t, ts)
			for i := range 3 {
				signData(t, h, []byte(fmt.Sprint("payload ", i)))
			}
			// Each request uses up its connection; the server dials the
			// next one after the bridge closes it.
			eventually(t, "the fourth connection", func() bool { return ts.dials.Load() == 4 })
			if got := h.metric("signet_bridge_server_connections_returned_total"); got != 0 {
				t.Fatalf("connections returned = %v, want 0", got)
			}
		})
	}
}

// TestServerConnReuseBound: a connection carries at most
// MaxRequestsPerServerConn requests; then the bridge closes it and the
// server dials a new one.
func TestServerConnReuseBound(t *testing.T) {
	t.Parallel()
	h := startBridge(t, func(c *Config) { c.MaxRequestsPerServerConn = 2 })
	ts := newTestServer(t, h.serverAddr)
	ts.reuse = true
	runReuseServer(t, ts)
	for i := range 5 {
		signData(t, h, []byte(fmt.Sprint("payload ", i)))
	}
	if d := ts.dials.Load(); d != 3 {
		t.Fatalf("%d connections for 5 requests, 2 per connection; want 3", d)
	}
	if got := h.metric("signet_bridge_reused_server_connection_requests_total"); got != 2 {
		t.Fatalf("reused-connection requests = %v, want 2", got)
	}
}

// TestServerConnReuseEndsOnError: bytes out of place after a reply, or a
// request the server drops, end the connection; the next request is
// served on a new one.
func TestServerConnReuseEndsOnError(t *testing.T) {
	t.Parallel()
	h := startBridge(t, nil)
	ts := newTestServer(t, h.serverAddr)
	ts.reuse = true
	ts.misbehave = func(n int) string { return map[int]string{1: "stray", 3: "drop"}[n] }
	runReuseServer(t, ts)

	signData(t, h, []byte("request 0"))
	// The reply is whole and relayed; the stray bytes after it only
	// cost the server its connection.
	signData(t, h, []byte("request 1"))
	signData(t, h, []byte("request 2"))
	if _, err := doRequest(h.clientAddr, getPKI().alice, fields("op", "sign-data", "user", "alice", "key", "k"), []byte("request 3"), nil); err == nil {
		t.Fatal("a request the server dropped got a reply")
	}
	signData(t, h, []byte("request 4"))
	if d := ts.dials.Load(); d != 3 {
		t.Fatalf("%d connections, want 3 (requests 0-1, 2-3, 4)", d)
	}
	if got := h.metric("signet_bridge_server_connections_returned_total"); got != 3 {
		t.Fatalf("connections returned = %v, want 3 (after requests 0, 2 and 4)", got)
	}
	if !bytes.Contains([]byte(h.logs.String()), []byte("did not end it with its EOF markers alone")) {
		t.Fatal("the stray bytes were not logged")
	}
}
