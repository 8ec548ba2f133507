package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
)

func offerReuse(c *tls.Config) { c.NextProtos = []string{protocol.ReuseALPN} }

// requestOn sends one request on conn, a connection the server dialed,
// as client and bridge together, reads the verified reply and then ends
// the request as a signet bridge does with the reuse extension: its
// outer EOF (the inner one went with the inner session), then the
// server's outer and inner EOF markers and nothing else.
func (f *connFixture) requestOn(conn net.Conn, cn string, fields, secrets map[string]string, payload []byte) (*reply, error) {
	f.t.Helper()
	m, keys, err := f.send(conn, cn, fields, secrets, payload, nil)
	if err != nil {
		return nil, err
	}
	rh, body, err := protocol.ReadReply(m.Reader(protocol.Outer), keys, 1<<30)
	if err != nil {
		return nil, err
	}
	if err := m.Writer(protocol.Outer).Close(); err != nil {
		return nil, err
	}
	if err := m.AwaitEOF(); err != nil {
		return nil, err
	}
	return &reply{rh.Code(), rh.Fields(), body}, nil
}

// closedByServer reads conn to its end and fails unless the server closes
// it (within a generous bound) without sending anything more.
func closedByServer(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the server did not close the connection: %v", err)
	}
	if len(b) > 0 {
		t.Fatalf("the server sent %d more bytes before closing", len(b))
	}
}

// endedByServer waits (within a generous bound) for the server to end
// conn, whose requests m reads; the server may end it with a reset, as
// it drops without reading what was sent.
func endedByServer(t *testing.T, conn net.Conn, m *protocol.Mux) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := m.Drain(); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the server did not end the connection: %v", err)
		}
	}
	conn.Close()
}

// TestConnServerReuse: with the reuse extension negotiated, one
// connection carries request after request, each answered and verified;
// the Dialer counts the connection idle between them and dials no more
// than before.
func TestConnServerReuse(t *testing.T) {
	t.Parallel()
	f := newConnFixtureWith(t, offerReuse, nil)
	conn := f.bridge.accept(t, 5*time.Second)
	if np := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; np != protocol.ReuseALPN {
		t.Fatalf("negotiated protocol %q, want %q", np, protocol.ReuseALPN)
	}
	k, _ := f.a.Store.GetKey(context.Background(), "fedora")
	cert, _ := armorCert(k.PGPCertificate)
	// A payload larger than the memory spool, so the request spans many
	// chunks of the stream.
	data := bytes.Repeat([]byte("reuse "), 300000)
	for i := range 4 {
		if i%2 == 0 {
			r, err := f.requestOn(conn, "root", map[string]string{"op": "list-users", "user": "root"}, rootPW, nil)
			if err != nil || r.code != 0 || namesOf(r.payload) != "alice,bob,root," {
				t.Fatalf("request %d, list-users: %+v, %v", i, r, err)
			}
			continue
		}
		msg := append(data, byte(i))
		r, err := f.requestOn(conn, "alice", map[string]string{"op": "sign-data", "user": "alice", "key": "fedora"}, alicePass, msg)
		if err != nil || r.code != 0 {
			t.Fatalf("request %d, sign-data: %+v, %v", i, r, err)
		}
		gpgVerify(t, cert, r.payload, msg)
	}
	if n := f.dialer.Reused(); n != 3 {
		t.Fatalf("Reused() = %d after 4 requests on one connection, want 3", n)
	}
	// Two idle at the start; the first request made one busy and a third
	// was dialed; the busy one is idle again and nothing more was dialed.
	waitStats(t, f.dialer, server.Stats{Idle: 3, Total: 3})
}

// TestConnServerReuseDeadlinePerRequest: the request timeout runs from
// each request's first byte; a reused connection waits for the next
// request without one.
func TestConnServerReuseDeadlinePerRequest(t *testing.T) {
	testenv.SkipShort(t, "it waits out a request timeout")
	t.Parallel()
	const timeout = 3 * time.Second
	f := newConnFixtureWith(t, offerReuse, func(cs *server.ConnServer) { cs.RequestTimeout = timeout })
	conn := f.bridge.accept(t, 5*time.Second)
	for i := range 2 {
		r, err := f.requestOn(conn, "root", map[string]string{"op": "list-users", "user": "root"}, rootPW, nil)
		if err != nil || r.code != 0 {
			t.Fatalf("request %d: %+v, %v", i, r, err)
		}
		if i == 0 {
			// Idle for longer than a request may take: the first
			// request's deadline must not end the connection.
			time.Sleep(timeout + time.Second)
		}
	}
}

// TestConnServerNoReuseWithoutALPN: a bridge that does not offer the
// extension (Sigul's, or signet's with it switched off) gets one request
// per connection, as before: the server reads nothing more as a request
// and closes once the bridge does.
func TestConnServerNoReuseWithoutALPN(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t)
	conn := f.bridge.accept(t, 5*time.Second)
	if np := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; np != "" {
		t.Fatalf("negotiated protocol %q with a bridge that offers none", np)
	}
	r, err := f.requestOn(conn, "root", map[string]string{"op": "list-users", "user": "root"}, rootPW, nil)
	if err != nil || r.code != 0 {
		t.Fatalf("list-users: %+v, %v", r, err)
	}
	// A second request on the same connection, then the bridge's close.
	var fl protocol.Fields
	fl.SetStr("op", "list-users")
	fl.SetStr("user", "root")
	h, _ := protocol.NewRequestHeader(fl, 0)
	if _, err := protocol.WriteRequest(protocol.NewMux(conn, nil).Writer(protocol.Outer), h, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*tls.Conn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	closedByServer(t, conn)
	if n := f.dialer.Reused(); n != 0 {
		t.Fatalf("the server took %d requests on a connection without the extension", n)
	}
}

// TestConnServerReuseEndsOnError: a request that fails, or bytes out of
// place after a reply, end a reused connection; the next request is
// served on a new one.
func TestConnServerReuseEndsOnError(t *testing.T) {
	t.Parallel()
	f := newConnFixtureWith(t, offerReuse, nil)
	listUsers := map[string]string{"op": "list-users", "user": "root"}

	// A request the server drops (the payload hash does not match).
	conn := f.bridge.accept(t, 5*time.Second)
	if r, err := f.requestOn(conn, "root", listUsers, rootPW, nil); err != nil || r.code != 0 {
		t.Fatalf("first request: %+v, %v", r, err)
	}
	m, keys := f.sendWrongHash(t, conn)
	if _, _, err := protocol.ReadReply(m.Reader(protocol.Outer), keys, 1<<20); err == nil {
		t.Fatal("a request with a wrong payload hash got a reply")
	}
	endedByServer(t, conn, m)

	// Outer data where the bridge's outer EOF belongs.
	conn = f.bridge.accept(t, 5*time.Second)
	m, keys, err := f.send(conn, "root", listUsers, rootPW, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rh, _, err := protocol.ReadReply(m.Reader(protocol.Outer), keys, 1<<20); err != nil || rh.Code() != 0 {
		t.Fatalf("list-users: %v, %v", rh, err)
	}
	if _, err := m.Writer(protocol.Outer).Write([]byte("stray")); err != nil {
		t.Fatal(err)
	}
	m.Writer(protocol.Outer).Close()
	endedByServer(t, conn, m)

	// Only the dropped request came on a reused connection; the next
	// request goes to a new one.
	if n := f.dialer.Reused(); n != 1 {
		t.Fatalf("Reused() = %d, want 1", n)
	}
	conn = f.bridge.accept(t, 5*time.Second)
	defer conn.Close()
	if r, err := f.requestOn(conn, "root", listUsers, rootPW, nil); err != nil || r.code != 0 {
		t.Fatalf("request on a new connection: %+v, %v", r, err)
	}
}
