package server_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/internal/testpki"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
)

// testPKI is a CA and certificates issued by it, for real TLS on loopback.
type testPKI struct {
	t    *testing.T
	ca   *testpki.CA
	pool *x509.CertPool
}

func newPKI(t *testing.T) *testPKI {
	ca := testpki.New(t, "signet test CA")
	return &testPKI{t: t, ca: ca, pool: ca.Pool}
}

// leaf issues a certificate for cn, valid for TLS clients and servers.
func (p *testPKI) leaf(cn string) tls.Certificate {
	return p.ca.MustIssue(p.t, testpki.Leaf{CN: cn, DNSNames: []string{cn}, IPs: testpki.Loopback, EKU: testpki.Both}).TLS
}

// connFixture runs a ConnServer behind a Dialer against a test "bridge"
// that hands each server connection to the test, which then speaks as a
// client through it (a bridge only relays, so this is the client's view).
type connFixture struct {
	*opsFixture
	pki    *testPKI
	bridge *fakeBridge
	dialer *server.Dialer
}

func newConnFixture(t *testing.T) *connFixture {
	return newConnFixtureWith(t, nil, nil)
}

// newConnFixtureWith is newConnFixture with the fake bridge's TLS
// configuration changed by bridgeTLS and the ConnServer by conn (either
// may be nil).
func newConnFixtureWith(t *testing.T, bridgeTLS func(*tls.Config), conn func(*server.ConnServer)) *connFixture {
	f := newOps(t)
	pki := newPKI(t)
	bridgeCert := pki.leaf("127.0.0.1")
	bcfg := &tls.Config{Certificates: []tls.Certificate{bridgeCert}}
	if bridgeTLS != nil {
		bridgeTLS(bcfg)
	}
	b := startBridge(t, "127.0.0.1:0", bcfg)
	t.Cleanup(b.stop)
	srvCert := pki.leaf("signet-server.test")
	cs := &server.ConnServer{Handlers: f.h, InnerTLS: &tls.Config{Certificates: []tls.Certificate{srvCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool}}
	if conn != nil {
		conn(cs)
	}
	d := &server.Dialer{Addr: b.ln.Addr().String(), TLS: &tls.Config{Certificates: []tls.Certificate{srvCert}, RootCAs: pki.pool},
		Idle: 2, Max: 4, Serve: cs.Serve}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); b.stop(); <-done })
	return &connFixture{opsFixture: f, pki: pki, bridge: b, dialer: d}
}

type reply struct {
	code    protocol.ErrorCode
	fields  protocol.Fields
	payload []byte
}

// request sends one request as a client whose certificate names cn, and
// returns the verified reply. tamper, if set, may change the reply bytes
// before the client checks them.
func (f *connFixture) request(cn string, fields map[string]string, secrets map[string]string, payload []byte, tamper func([]byte) []byte) (*reply, error) {
	f.t.Helper()
	conn := f.bridge.accept(f.t, 5*time.Second)
	defer conn.Close()
	m, keys, err := f.send(conn, cn, fields, secrets, payload, nil)
	if err != nil {
		return nil, err
	}
	var src io.Reader = m.Reader(protocol.Outer)
	if tamper != nil {
		raw, err := io.ReadAll(src)
		if err != nil {
			return nil, err
		}
		src = bytes.NewReader(tamper(raw))
	}
	rh, body, err := protocol.ReadReply(src, keys, 1<<30)
	if err != nil {
		return nil, err
	}
	m.Writer(protocol.Outer).Close()
	return &reply{rh.Code(), rh.Fields(), body}, nil
}

// send sends one request on conn as a client whose certificate names cn,
// with the sign-rpms base keys sub if not nil, and returns the connection's
// mux and the reply keys.
func (f *connFixture) send(conn net.Conn, cn string, fields map[string]string, secrets map[string]string, payload []byte, sub *protocol.SubKeys) (*protocol.Mux, protocol.ReplyKeys, error) {
	var keys protocol.ReplyKeys
	m := protocol.NewMux(conn, nil)
	clientCert := f.pki.leaf(cn)
	inner := tls.Client(m.InnerConn(), &tls.Config{Certificates: []tls.Certificate{clientCert}, RootCAs: f.pki.pool, ServerName: "signet-server.test"})
	hs := make(chan error, 1)
	go func() { hs <- inner.Handshake() }() // the ClientHello goes first, as Sigul's client does

	var fl protocol.Fields
	for k, v := range fields {
		if err := fl.Set(k, []byte(v)); err != nil {
			return nil, keys, err
		}
	}
	h, err := protocol.NewRequestHeader(fl, uint64(len(payload)))
	if err != nil {
		return nil, keys, err
	}
	psum, err := protocol.WriteRequest(m.Writer(protocol.Outer), h, bytes.NewReader(payload))
	if err != nil {
		return nil, keys, err
	}
	if err := <-hs; err != nil {
		return nil, keys, err
	}
	keys, err = protocol.GenerateReplyKeys(nil)
	if err != nil {
		return nil, keys, err
	}
	msg, err := protocol.NewInnerMessage(h, psum, keys)
	if err != nil {
		return nil, keys, err
	}
	for k, v := range secrets {
		msg.Fields.Set(k, []byte(v))
	}
	if sub != nil {
		if err := msg.SetSubKeys(*sub); err != nil {
			return nil, keys, err
		}
	}
	b, _ := msg.MarshalBinary()
	if _, err := inner.Write(b); err != nil {
		return nil, keys, err
	}
	inner.Close()
	return m, keys, nil
}

func TestConnServer(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t)
	r, err := f.request("root", map[string]string{"op": "list-users", "user": "root"}, rootPW, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 0 || namesOf(r.payload) != "alice,bob,root," {
		t.Fatalf("list-users: code %v, payload %q", r.code, r.payload)
	}
	// A wrong password, and a certificate for another user.
	for _, c := range []struct{ cn, pw string }{{"root", "wrong"}, {"alice", "root pw"}} {
		r, err := f.request(c.cn, map[string]string{"op": "list-users", "user": "root"}, map[string]string{"password": c.pw}, nil, nil)
		if err != nil || r.code != protocol.ErrorCode(protocol.CodeAuthenticationFailed) || len(r.fields) != 0 {
			t.Fatalf("cn %s password %q: %+v, %v", c.cn, c.pw, r, err)
		}
	}
	// sign-data with a payload larger than the memory spool.
	data := bytes.Repeat([]byte("signet "), 300000)
	r, err = f.request("alice", map[string]string{"op": "sign-data", "user": "alice", "key": "fedora", "armor": "\x01"}, alicePass, data, nil)
	if err != nil || r.code != 0 {
		t.Fatalf("sign-data: %+v, %v", r, err)
	}
	k, _ := f.a.Store.GetKey(context.Background(), "fedora")
	cert, _ := armorCert(k.PGPCertificate)
	gpgVerify(t, cert, r.payload, data)
	// The audit record names what was signed.
	last, err := f.a.Store.LastAudit(context.Background())
	if want := fmt.Sprintf("sha512:%x", sha512.Sum512(data)); err != nil || last.Digest != want || last.Operation != "sign-data" || last.Result != "ok" {
		t.Fatalf("audit record of sign-data: %+v, %v", last, err)
	}

	// A reply changed on its way is refused by the client.
	for name, tamper := range map[string]func([]byte) []byte{
		"header": func(b []byte) []byte { b[2] ^= 1; return b },
		"payload": func(b []byte) []byte {
			b[len(b)-64-10] ^= 1
			return b
		},
	} {
		_, err := f.request("alice", map[string]string{"op": "sign-data", "user": "alice", "key": "fedora"}, alicePass, []byte("x"), tamper)
		if !errors.Is(err, protocol.ErrIntegrity) {
			t.Fatalf("tampered reply %s: err = %v, want ErrIntegrity", name, err)
		}
	}
	// list-binding-methods is for administrators.
	r, err = f.request("alice", map[string]string{"op": "list-binding-methods", "user": "alice"}, alicePass, nil, nil)
	if err != nil || r.code != protocol.ErrorCode(protocol.CodeAuthenticationFailed) {
		t.Fatalf("list-binding-methods by alice: %+v, %v", r, err)
	}
	// sign-pe with an OpenPGP key is refused with UNSUPPORTED_KEYTYPE and
	// a message.
	r, err = f.request("alice", map[string]string{"op": "sign-pe", "user": "alice", "key": "fedora", "cert-name": "x"}, alicePass, []byte("MZ"), nil)
	if err != nil || r.code != protocol.ErrorCode(protocol.CodeUnsupportedKeytype) || !bytes.Contains(mustLookup(r.fields, "message"), []byte("OpenPGP")) {
		t.Fatalf("sign-pe with a gnupg key: %+v, %v", r, err)
	}
}

func mustLookup(f protocol.Fields, key string) []byte {
	v, _ := f.Lookup(key)
	return v
}

// TestConnServerDrops checks that requests whose hashes do not match are
// closed without a reply, and that the server keeps serving after each.
func TestConnServerDrops(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t)
	conn := f.bridge.accept(t, 5*time.Second)
	m, keys := f.sendWrongHash(t, conn)
	if _, _, err := protocol.ReadReply(m.Reader(protocol.Outer), keys, 1<<20); err == nil {
		t.Fatal("a request with a wrong payload hash got a reply")
	}
	conn.Close()
	// The server goes on serving.
	r, err := f.request("root", map[string]string{"op": "list-users", "user": "root"}, rootPW, nil, nil)
	if err != nil || r.code != 0 {
		t.Fatalf("after a dropped request: %+v, %v", r, err)
	}
}

// sendWrongHash sends on conn, as root, a list-users request whose inner
// message names a payload hash that does not match, which the server must
// drop without a reply.
func (f *connFixture) sendWrongHash(t *testing.T, conn net.Conn) (*protocol.Mux, protocol.ReplyKeys) {
	t.Helper()
	m := protocol.NewMux(conn, nil)
	inner := tls.Client(m.InnerConn(), &tls.Config{Certificates: []tls.Certificate{f.pki.leaf("root")}, RootCAs: f.pki.pool, ServerName: "signet-server.test"})
	var fl protocol.Fields
	fl.SetStr("op", "list-users")
	fl.SetStr("user", "root")
	h, _ := protocol.NewRequestHeader(fl, 0)
	protocol.WriteRequest(m.Writer(protocol.Outer), h, bytes.NewReader(nil))
	keys, _ := protocol.GenerateReplyKeys(nil)
	wrong := sha512.Sum512([]byte("not the payload"))
	msg, _ := protocol.NewInnerMessage(h, wrong[:], keys)
	msg.Fields.Set("password", []byte("root pw"))
	b, _ := msg.MarshalBinary()
	if _, err := inner.Write(b); err != nil {
		t.Fatal(err)
	}
	inner.Close()
	return m, keys
}

func armorCert(cert []byte) ([]byte, error) { return openpgp.Armor(cert, "PGP PUBLIC KEY BLOCK") }

// recordingCache is a client session cache that remembers whether a
// session (a ticket) was ever stored.
type recordingCache struct {
	tls.ClientSessionCache
	stored atomic.Bool
}

func (c *recordingCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.stored.Store(true)
	}
	c.ClientSessionCache.Put(key, cs)
}

// TestConnServerInnerNoTicket: the server sends no session ticket in the
// inner session (clients never read one), even to a client that would
// keep it and reads the inner session to its end.
func TestConnServerInnerNoTicket(t *testing.T) {
	f := newConnFixture(t)
	conn := f.bridge.accept(t, 5*time.Second)
	defer conn.Close()
	m := protocol.NewMux(conn, nil)
	cache := &recordingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	inner := tls.Client(m.InnerConn(), &tls.Config{Certificates: []tls.Certificate{f.pki.leaf("root")}, RootCAs: f.pki.pool,
		ServerName: "signet-server.test", ClientSessionCache: cache})
	hs := make(chan error, 1)
	go func() { hs <- inner.Handshake() }()
	var fl protocol.Fields
	fl.Set("op", []byte("list-users"))
	fl.Set("user", []byte("root"))
	h, err := protocol.NewRequestHeader(fl, 0)
	if err != nil {
		t.Fatal(err)
	}
	psum, err := protocol.WriteRequest(m.Writer(protocol.Outer), h, bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	keys, err := protocol.GenerateReplyKeys(nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := protocol.NewInnerMessage(h, psum, keys)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range rootPW {
		msg.Fields.Set(k, []byte(v))
	}
	b, _ := msg.MarshalBinary()
	if _, err := inner.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := inner.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// Everything the server sends in the inner session, up to its
	// close_notify: a ticket would be among it.
	if _, err := io.ReadAll(inner); err != nil {
		t.Fatalf("reading the inner session to its end: %v", err)
	}
	rh, _, err := protocol.ReadReply(m.Reader(protocol.Outer), keys, 1<<20)
	if err != nil || rh.Code() != 0 {
		t.Fatalf("list-users: %v %v", rh, err)
	}
	m.Writer(protocol.Outer).Close()
	if cache.stored.Load() {
		t.Fatal("the server sent a session ticket in the inner session")
	}
}
