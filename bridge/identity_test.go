package bridge

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/protocol"
)

// TestServerPortIdentity: the server port takes only certificates that name
// one of server_names (by CN or DNS name); a client's certificate that
// dials in as a server is closed at once and never gets a request.
func TestServerPortIdentity(t *testing.T) {
	h := startBridge(t, func(c *Config) { c.PairingTimeout = 300 * time.Millisecond })
	p := getPKI()

	// The impersonator: alice's certificate on the server port.
	d := tls.Dialer{Config: p.clientCfg("bridge.test", p.alice)}
	c, err := d.Dial("tcp", h.serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A client request meanwhile must not reach it.
	if _, err := expectDrop(h.clientAddr, p.alice, rawRequest(1, fields("op", "list-users", "user", "alice"), 0), nil); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n > 0 {
		t.Fatal("the impersonator received request bytes")
	}
	if err == nil || isTimeout(err) {
		t.Fatalf("the impersonator's connection was kept: %v", err)
	}
	if got := h.metric("signet_bridge_server_connections_refused_total", "reason", RefusedIdentity); got != 1 {
		t.Fatalf("identity refusals = %v", got)
	}
	if got := h.count("list-users", ResultPairingTimeout); got != 1 {
		t.Fatalf("the request was not left unpaired: pairing timeouts = %v", got)
	}
	if !strings.Contains(h.logs.String(), `"cert_cn":"alice"`) {
		t.Errorf("the refusal does not name the certificate:\n%s", h.logs.String())
	}

	// Real servers, by CN and by DNS name (case aside), are paired.
	for _, cert := range []tls.Certificate{p.server, p.serverBySAN} {
		ts := newTestServer(t, h.serverAddr)
		ts.cert = &cert
		ctx, cancel := context.WithCancel(context.Background())
		wg := ts.run(ctx, 1)
		res, err := doRequest(h.clientAddr, p.alice, fields("op", "list-users", "user", "alice"), nil, nil)
		if err != nil || res.code != protocol.CodeOK {
			t.Fatalf("request through a configured server: %v", err)
		}
		cancel()
		wg.Wait()
	}
	if !strings.Contains(h.logs.String(), `"server_names":["server.test","SIGNER.test"]`) {
		t.Errorf("the start-up log does not list server_names:\n%s", h.logs.String())
	}
}

// TestServerCertAsClient: a certificate that names a server is refused on
// the client port, even for a request in its own name.
func TestServerCertAsClient(t *testing.T) {
	h := startBridge(t, func(c *Config) { c.LenientCN = true })
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 1)
	p := getPKI()
	for _, cert := range []tls.Certificate{p.server, p.serverBySAN} {
		if _, err := expectDrop(h.clientAddr, cert, rawRequest(1, fields("op", "list-users", "user", "server.test"), 0), nil); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both refusals to be counted", func() bool { return h.count(opUnknown, ResultDroppedServerCert) == 2 })
	if len(ts.seen()) != 0 {
		t.Fatal("a server certificate's request reached a server")
	}
	// A user's certificate still works, lenient CN or not.
	if res, err := doRequest(h.clientAddr, p.alice, fields("op", "list-users", "user", "alice"), nil, nil); err != nil || res.code != protocol.CodeOK {
		t.Fatalf("alice: %v", err)
	}
}
