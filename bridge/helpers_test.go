package bridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testpki"
	"github.com/signet-project/signet/protocol"
)

// --- certificates ---------------------------------------------------------

type testPKI struct {
	pool              *x509.CertPool
	bridge, server    tls.Certificate
	alice, bob, robot tls.Certificate
	serverBySAN       tls.Certificate // CN node-7, DNS name signer.test
	otherCA           tls.Certificate // chains to another CA
}

var (
	pkiOnce sync.Once
	pki     *testPKI
)

func getPKI() *testPKI {
	pkiOnce.Do(func() {
		mkCA := func(cn string) *testpki.CA {
			ca, err := testpki.NewCA(cn)
			if err != nil {
				panic(err)
			}
			return ca
		}
		ca, other := mkCA("test CA"), mkCA("other CA")
		leaf := func(ca *testpki.CA, cn, dns string, eku ...x509.ExtKeyUsage) tls.Certificate {
			l := testpki.Leaf{CN: cn, EKU: eku}
			if dns != "" {
				l.DNSNames = []string{dns}
			}
			c, err := ca.Issue(l)
			if err != nil {
				panic(err)
			}
			return c.TLS
		}
		p := &testPKI{pool: ca.Pool}
		p.bridge = leaf(ca, "bridge.test", "bridge.test", x509.ExtKeyUsageServerAuth)
		p.server = leaf(ca, "server.test", "server.test", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
		p.serverBySAN = leaf(ca, "node-7", "signer.test", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
		p.alice = leaf(ca, "alice", "", x509.ExtKeyUsageClientAuth)
		p.bob = leaf(ca, "bob", "", x509.ExtKeyUsageClientAuth)
		p.robot = leaf(ca, "robot", "", x509.ExtKeyUsageClientAuth)
		p.otherCA = leaf(other, "alice", "", x509.ExtKeyUsageClientAuth)
		pki = p
	})
	return pki
}

func (p *testPKI) clientCfg(name string, cert tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: name, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

func (p *testPKI) serverCfg(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// --- a bridge under test --------------------------------------------------

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t          *testing.T
	b          *Bridge
	clientAddr string
	serverAddr string
	logs       *syncBuffer
	served     chan error
}

func startBridge(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	p := getPKI()
	logs := &syncBuffer{}
	cfg := Config{
		Certificate:    p.bridge,
		CA:             p.pool,
		ServerNames:    []string{"server.test", "SIGNER.test"},
		PairingTimeout: 10 * time.Second,
		ClientTimeout:  10 * time.Second,
		ServerTimeout:  10 * time.Second,
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, b: b, clientAddr: cl.Addr().String(), serverAddr: sl.Addr().String(), logs: logs, served: make(chan error, 1)}
	go func() { h.served <- b.Serve(cl, sl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
		select {
		case err := <-h.served:
			if err != nil && err != ErrClosed { // ErrClosed: Shutdown came first
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
		if t.Failed() {
			t.Logf("bridge log:\n%s", logs.String())
		}
	})
	return h
}

// count returns signet_bridge_requests_total for op and result.
func (h *harness) count(op, result string) float64 {
	return h.metric("signet_bridge_requests_total", "op", op, "result", result)
}

// metric returns the value of a counter or gauge with the given labels
// (name=value pairs), or 0 if there is none yet.
func (h *harness) metric(name string, labels ...string) float64 {
	mfs, err := h.b.m.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --- a test server speaking the protocol ------------------------------

// seenRequest is what the test server received for one request.
type seenRequest struct {
	op   string
	head []byte // R1‖R2 as received
	raw  []byte // everything the bridge sent on the connection
}

type testServer struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	requests []seenRequest
	// hold, if set, is waited on after the inner session and before the
	// reply; started gets the op when a request header arrives.
	hold    chan struct{}
	started chan string
	// cert, if set, replaces the server certificate on the outer
	// connection (an impersonator's).
	cert *tls.Certificate
	// replySize, if set, is the length of every sign-data reply.
	replySize int
	// reuse makes the server offer the reuse extension and, when the
	// bridge accepts it, serve request after request on a connection.
	reuse bool
	// misbehave, if set, is asked before each reply with the request's
	// number (from 0, over all connections): "drop" closes without a
	// reply, "stray" sends outer bytes between the reply and the outer
	// EOF.
	misbehave func(n int) string
	dials     atomic.Int32 // connections made
	begun     atomic.Int32 // requests whose header arrived
}

func newTestServer(t *testing.T, addr string) *testServer {
	return &testServer{t: t, addr: addr}
}

func (ts *testServer) seen() []seenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]seenRequest(nil), ts.requests...)
}

func (ts *testServer) dial() (*tls.Conn, error) {
	cert := getPKI().server
	if ts.cert != nil {
		cert = *ts.cert
	}
	cfg := getPKI().clientCfg("bridge.test", cert)
	if ts.reuse {
		cfg.NextProtos = []string{protocol.ReuseALPN}
	}
	d := tls.Dialer{Config: cfg}
	c, err := d.Dial("tcp", ts.addr)
	if err != nil {
		return nil, err
	}
	ts.dials.Add(1)
	return c.(*tls.Conn), nil
}

// run keeps n connections at the bridge, re-dialing after each request,
// until ctx ends.
func (ts *testServer) run(ctx context.Context, n int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := ts.dial()
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				for {
					// With the reuse extension, request after request.
					if ts.serveOne(c) != nil || c.ConnectionState().NegotiatedProtocol != protocol.ReuseALPN {
						break
					}
				}
				stop()
				c.Close()
			}
		}()
	}
	return &wg
}

type tapReader struct {
	r   io.Reader
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *tapReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.mu.Lock()
	t.buf.Write(p[:n])
	t.mu.Unlock()
	return n, err
}

func (t *tapReader) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf.Bytes())
}

type rw struct {
	io.Reader
	io.Writer
}

// transform is the test server's "signature" of a payload: every byte
// XOR 0x5a, same length, so large replies exercise the chunking.
func transform(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = c ^ 0x5a
	}
	return out
}

// serveOne answers one request as a server does (§4.3), returning an
// error if anything is off; a connection that ends before any request
// returns io.EOF. With the reuse extension negotiated it ends the request
// by its rule (the bridge's EOF markers and nothing else) and returns,
// leaving the connection open for the next request.
func (ts *testServer) serveOne(conn *tls.Conn) error {
	tap := &tapReader{r: conn}
	m := protocol.NewMux(rw{tap, conn}, nil)
	h, err := protocol.ReadRequestHeader(m.Reader(protocol.Outer))
	if err != nil {
		return err
	}
	n := int(ts.begun.Add(1)) - 1
	if ts.started != nil {
		ts.started <- h.Op()
	}
	pr := h.Payload(m.Reader(protocol.Outer))
	payload, err := io.ReadAll(pr)
	if err != nil {
		return err
	}
	inner := tls.Server(m.InnerConn(), getPKI().serverCfg(getPKI().server))
	msg, err := protocol.ReadInnerMessage(inner)
	if err != nil {
		return err
	}
	if err := inner.Close(); err != nil {
		return err
	}
	if _, err := msg.Verify(h, pr.SHA512()); err != nil {
		return err
	}
	keys, err := msg.ReplyKeys()
	if err != nil {
		return err
	}
	if ts.hold != nil {
		<-ts.hold
	}
	how := ""
	if ts.misbehave != nil {
		how = ts.misbehave(n)
	}
	if how == "drop" {
		return errors.New("dropped as the test asked")
	}
	w := m.Writer(protocol.Outer)
	switch h.Op() {
	case "list-users":
		var f protocol.Fields
		f.SetU32("num-users", 2)
		body := []byte("alice\x00bob\x00")
		err = protocol.WriteReply(w, keys, protocol.CodeOK, f, uint64(len(body)), bytes.NewReader(body))
	case "sign-data", "sign-rpm":
		out := transform(payload)
		if ts.replySize > 0 {
			out = make([]byte, ts.replySize)
		}
		err = protocol.WriteReply(w, keys, protocol.CodeOK, nil, uint64(len(out)), bytes.NewReader(out))
	case "sign-rpms":
		sk, kerr := msg.SubKeys()
		if kerr != nil {
			return kerr
		}
		if err = protocol.WriteReply(w, keys, protocol.CodeOK, nil, 0, nil); err != nil {
			return err
		}
		sr := protocol.NewSubRequestReader(m.Reader(protocol.Outer), sk, protocol.DefaultMaxFilePayload)
		sw := protocol.NewSubReplyWriter(w, sk)
		for {
			s, err := sr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			d, err := io.ReadAll(s.Payload)
			var ie *protocol.IntegrityError
			if err != nil && !errors.As(err, &ie) { // a MAC mismatch only means "not authenticated" (§7.6)
				return err
			}
			f, _ := protocol.SubReplyFields(s.Header.ID(), protocol.CodeOK)
			out := transform(d)
			if _, err := sw.Write(f, uint64(len(out)), bytes.NewReader(out)); err != nil {
				return err
			}
		}
	default:
		err = protocol.WriteReply(w, keys, protocol.CodeOK, nil, 0, nil)
	}
	if err != nil {
		return err
	}
	if how == "stray" {
		if _, err := w.Write([]byte("stray")); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if conn.ConnectionState().NegotiatedProtocol == protocol.ReuseALPN {
		if err := m.AwaitEOF(); err != nil {
			return err
		}
	} else {
		m.Drain() // until the bridge closes (§2.7)
	}
	ts.mu.Lock()
	ts.requests = append(ts.requests, seenRequest{op: h.Op(), head: h.HeaderBytes(), raw: tap.bytes()})
	ts.mu.Unlock()
	return nil
}

// --- a test client ----------------------------------------------------

type clientResult struct {
	code    protocol.ErrorCode
	fields  protocol.Fields
	payload []byte
	subs    map[uint32][]byte
	sent    []byte // R1‖R2 as sent
	raw     []byte // everything the bridge sent to the client
}

func fields(kv ...string) protocol.Fields {
	var f protocol.Fields
	for i := 0; i < len(kv); i += 2 {
		if err := f.SetStr(kv[i], kv[i+1]); err != nil {
			panic(err)
		}
	}
	return f
}

func dialBridge(addr string, cert tls.Certificate) (*tls.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: getPKI().clientCfg("bridge.test", cert)}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	return tc, nil
}

// openRequest is a client request whose inner session is done and whose
// reply has not been read yet.
type openRequest struct {
	conn *tls.Conn
	m    *protocol.Mux
	tap  *tapReader
	h    *protocol.RequestHeader
	keys protocol.ReplyKeys
	sk   protocol.SubKeys
}

// sendRequest sends one request as a Sigul client does, up to the end of
// the inner session; the caller reads the reply (or not) and closes conn.
func sendRequest(addr string, cert tls.Certificate, f protocol.Fields, payload []byte) (*openRequest, error) {
	conn, err := dialBridge(addr, cert)
	if err != nil {
		return nil, err
	}
	o := &openRequest{conn: conn, tap: &tapReader{r: conn}}
	o.m = protocol.NewMux(rw{o.tap, conn}, &protocol.MuxConfig{MaxWriteChunk: 4096})
	m := o.m
	inner := tls.Client(m.InnerConn(), getPKI().clientCfg("server.test", cert))
	hs := make(chan error, 1)
	go func() { hs <- inner.Handshake() }() // the inner ClientHello goes first (§16.1)
	fail := func(err error) (*openRequest, error) {
		conn.Close()
		return nil, err
	}
	if o.h, err = protocol.NewRequestHeader(f, uint64(len(payload))); err != nil {
		return fail(err)
	}
	psum, err := protocol.WriteRequest(m.Writer(protocol.Outer), o.h, bytes.NewReader(payload))
	if err != nil {
		return fail(err)
	}
	if err := <-hs; err != nil {
		return fail(fmt.Errorf("inner handshake: %w", err))
	}
	o.keys, _ = protocol.GenerateReplyKeys(nil)
	msg, err := protocol.NewInnerMessage(o.h, psum, o.keys)
	if err != nil {
		return fail(err)
	}
	msg.Fields.SetStr("passphrase", "right")
	if o.h.Op() == "sign-rpms" {
		o.sk, _ = protocol.GenerateSubKeys(nil)
		msg.SetSubKeys(o.sk)
	}
	b, _ := msg.MarshalBinary()
	if _, err := inner.Write(b); err != nil {
		return fail(err)
	}
	if err := inner.Close(); err != nil {
		return fail(err)
	}
	return o, nil
}

// doRequest sends one request as a Sigul client does and verifies the
// reply's MACs; rpms are sign-rpms sub-request payloads, ids 0..n-1.
func doRequest(addr string, cert tls.Certificate, f protocol.Fields, payload []byte, rpms [][]byte) (*clientResult, error) {
	o, err := sendRequest(addr, cert, f, payload)
	if err != nil {
		return nil, err
	}
	defer o.conn.Close()
	m, tap, h, keys, sk := o.m, o.tap, o.h, o.keys, o.sk
	rh, data, err := protocol.ReadReply(m.Reader(protocol.Outer), keys, 1<<30)
	if err != nil {
		return nil, fmt.Errorf("reply: %w", err)
	}
	res := &clientResult{code: rh.Code(), fields: rh.Fields(), payload: data, sent: h.HeaderBytes(), subs: map[uint32][]byte{}}
	if h.Op() == "sign-rpms" {
		werr := make(chan error, 1)
		go func() {
			sw := protocol.NewSubRequestWriter(m.Writer(protocol.Outer), sk)
			for i, p := range rpms {
				var f protocol.Fields
				f.SetU32(protocol.FieldID, uint32(i))
				if _, err := sw.Write(f, uint64(len(p)), bytes.NewReader(p)); err != nil {
					werr <- err
					return
				}
			}
			werr <- m.Writer(protocol.Outer).Close()
		}()
		rr := protocol.NewSubReplyReader(m.Reader(protocol.Outer), sk, 1<<30)
		for {
			s, err := rr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			d, err := io.ReadAll(s.Payload)
			if err != nil {
				return nil, err
			}
			id, _ := s.Header.Fields().U32(protocol.FieldID)
			res.subs[id] = d
		}
		if err := <-werr; err != nil {
			return nil, err
		}
	} else {
		if n, err := m.Reader(protocol.Outer).Read(make([]byte, 1)); n != 0 || err != io.EOF || !m.Reader(protocol.Outer).EndedByMarker() {
			return nil, fmt.Errorf("expected the bridge's outer EOF, got %d bytes, %v", n, err)
		}
		if err := m.Writer(protocol.Outer).Close(); err != nil {
			return nil, err
		}
	}
	if err := m.Drain(protocol.Outer, protocol.Inner); err != nil {
		return nil, err
	}
	res.raw = tap.bytes()
	return res, nil
}

// rawRequest encodes R1‖R2‖R3 with any version and any fields, valid or
// not.
func rawRequest(version uint32, f protocol.Fields, payloadLen uint64) []byte {
	b := binary.BigEndian.AppendUint32(nil, version)
	b, err := f.AppendBinary(b)
	if err != nil {
		panic(err)
	}
	return binary.BigEndian.AppendUint64(b, payloadLen)
}

var errGotReply = errors.New("the bridge sent outer data")

// expectDrop sends req (R1‖R2‖R3) and payload as a client would, with an
// inner ClientHello, and checks that the bridge closes the connection
// without sending any outer byte. It returns how long that took.
func expectDrop(addr string, cert tls.Certificate, req, payload []byte) (time.Duration, error) {
	start := time.Now()
	conn, err := dialBridge(addr, cert)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	m := protocol.NewMux(conn, nil)
	inner := tls.Client(m.InnerConn(), getPKI().clientCfg("server.test", cert))
	go inner.Handshake()
	if _, err := m.Writer(protocol.Outer).Write(req); err != nil {
		return time.Since(start), nil // already closed: fine
	}
	if len(payload) > 0 {
		m.Writer(protocol.Outer).Write(payload)
	}
	n, err := m.Reader(protocol.Outer).Read(make([]byte, 1))
	d := time.Since(start)
	if n > 0 {
		return d, errGotReply
	}
	if m.Reader(protocol.Outer).EndedByMarker() {
		return d, errors.New("the bridge sent an outer EOF marker; a drop sends nothing")
	}
	if err == nil || isTimeout(err) || strings.Contains(fmt.Sprint(err), "i/o timeout") {
		return d, fmt.Errorf("connection not closed: %v", err)
	}
	return d, nil
}

// chunks parses a raw leg into its chunks.
func chunks(t *testing.T, raw []byte) []protocol.Chunk {
	t.Helper()
	cr := protocol.NewChunkReader(bytes.NewReader(raw))
	var out []protocol.Chunk
	for {
		c, err := cr.ReadChunk(protocol.MaxChunkLen)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("chunk %d: %v", len(out), err)
		}
		out = append(out, c)
	}
}

func outerChunks(cs []protocol.Chunk) []protocol.Chunk {
	var out []protocol.Chunk
	for _, c := range cs {
		if c.Stream == protocol.Outer {
			out = append(out, c)
		}
	}
	return out
}
