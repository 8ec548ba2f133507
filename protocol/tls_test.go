package protocol

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testpki"
)

// testPKI is a throwaway CA with the certificates of the three roles.
type testPKI struct {
	pool                   *x509.CertPool
	client, server, bridge tls.Certificate
}

var (
	pkiOnce sync.Once
	pki     *testPKI
)

func getPKI(t testing.TB) *testPKI {
	pkiOnce.Do(func() {
		ca, err := testpki.NewCA("test CA")
		if err != nil {
			panic(err)
		}
		leaf := func(cn string, dns []string, eku []x509.ExtKeyUsage) tls.Certificate {
			c, err := ca.Issue(testpki.Leaf{CN: cn, DNSNames: dns, EKU: eku})
			if err != nil {
				panic(err)
			}
			return c.TLS
		}
		pki = &testPKI{pool: ca.Pool}
		pki.client = leaf("alice", nil, testpki.Client)
		// The server certificate is a TLS client towards the bridge and a
		// TLS server in the inner session: it needs both EKUs (§1.2).
		pki.server = leaf("server.test", []string{"server.test"}, testpki.Both)
		pki.bridge = leaf("bridge.test", []string{"bridge.test"}, testpki.Server)
	})
	return pki
}

func (p *testPKI) clientCfg(name string, cert tls.Certificate, maxVer uint16) *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: name, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, MaxVersion: maxVer}
}

func (p *testPKI) serverCfg(cert tls.Certificate, maxVer uint16) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12, MaxVersion: maxVer}
}

// tlsPair returns the two ends of a loopback TCP connection with outer TLS.
func tlsPair(t *testing.T, p *testPKI) (client, server *tls.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	must(t, err)
	sc := <-acc
	if sc == nil {
		t.Fatal("accept failed")
	}
	deadline := time.Now().Add(20 * time.Second)
	cc.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	return tls.Client(cc, p.clientCfg("bridge.test", p.client, 0)), tls.Server(sc, p.serverCfg(p.bridge, 0))
}

// TestInnerTLSOverMux runs a full crypto/tls handshake over the inner
// streams of two Muxes on one outer TLS connection, sends data both ways
// and closes cleanly, while both sides exchange outer items in the same
// connection at the same time.
func TestInnerTLSOverMux(t *testing.T) {
	p := getPKI(t)
	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(ver), func(t *testing.T) {
			a, b := tlsPair(t, p)
			defer a.Close()
			defer b.Close()
			ma, mb := NewMux(a, &MuxConfig{MaxWriteChunk: 4096}), NewMux(b, nil)
			msgA := bytes.Repeat([]byte("client->server "), 20000)
			msgB := bytes.Repeat([]byte("server->client "), 15000)

			items := func(seed byte) [][]byte {
				var out [][]byte
				for i := range 40 {
					out = append(out, bytes.Repeat([]byte{seed + byte(i)}, 1+i*997%9000))
				}
				return out
			}
			itemsA, itemsB := items(1), items(100)

			var wg sync.WaitGroup
			errs := make(chan error, 8)
			run := func(f func() error) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := f(); err != nil {
						errs <- err
					}
				}()
			}
			writeItems := func(m *Mux, its [][]byte) func() error {
				return func() error {
					for _, it := range its {
						var f Fields
						f.Set("item", it[:min(len(it), 200)])
						rk := ReplyKeys{Header: rep(1, 64), Payload: rep(2, 64)}
						if err := WriteReply(m.Writer(Outer), rk, CodeOK, f, uint64(len(it)), bytes.NewReader(it)); err != nil {
							return err
						}
					}
					return m.Writer(Outer).Close()
				}
			}
			readItems := func(m *Mux, want [][]byte) func() error {
				return func() error {
					rk := ReplyKeys{Header: rep(1, 64), Payload: rep(2, 64)}
					for i, w := range want {
						_, data, err := ReadReply(m.Reader(Outer), rk, 1<<20)
						if err != nil {
							return fmt.Errorf("outer item %d: %w", i, err)
						}
						if !bytes.Equal(data, w) {
							return fmt.Errorf("outer item %d differs", i)
						}
					}
					if _, err := m.Reader(Outer).Read(make([]byte, 1)); err != io.EOF || !m.Reader(Outer).EndedByMarker() {
						return fmt.Errorf("outer stream end: %v", err)
					}
					return nil
				}
			}
			run(writeItems(ma, itemsA))
			run(writeItems(mb, itemsB))
			run(readItems(ma, itemsB))
			run(readItems(mb, itemsA))
			run(func() error { // client side of the inner session
				tc := tls.Client(ma.InnerConn(), p.clientCfg("server.test", p.client, ver))
				if _, err := tc.Write(msgA); err != nil {
					return fmt.Errorf("client write: %w", err)
				}
				got := make([]byte, len(msgB))
				if _, err := io.ReadFull(tc, got); err != nil || !bytes.Equal(got, msgB) {
					return fmt.Errorf("client read: %v", err)
				}
				if tc.ConnectionState().Version != ver {
					return errors.New("wrong TLS version")
				}
				return tc.Close()
			})
			run(func() error { // server side
				tc := tls.Server(mb.InnerConn(), p.serverCfg(p.server, ver))
				got := make([]byte, len(msgA))
				if _, err := io.ReadFull(tc, got); err != nil || !bytes.Equal(got, msgA) {
					return fmt.Errorf("server read: %v", err)
				}
				if cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "alice" {
					return fmt.Errorf("client CN %q", cn)
				}
				if _, err := tc.Write(msgB); err != nil {
					return err
				}
				// The client's close_notify ends the session cleanly.
				if n, err := tc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					return fmt.Errorf("server: want clean EOF, got %d, %v", n, err)
				}
				return tc.Close()
			})
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			// Drain before close: each side reads to the other's markers
			// (the connection stays open, so only the markers end it), and
			// both inner EOF markers have then been exchanged.
			var dw sync.WaitGroup
			dw.Add(2)
			for _, m := range []*Mux{ma, mb} {
				go func() {
					defer dw.Done()
					if err := m.Drain(Outer, Inner); err != nil {
						t.Error(err)
					}
				}()
			}
			dw.Wait()
			for _, m := range []*Mux{ma, mb} {
				if !m.Reader(Inner).EndedByMarker() || !m.Reader(Outer).EndedByMarker() {
					t.Error("EOF markers not exchanged")
				}
			}
		})
	}
}

// --- a client, a bridge and a server built on the package API ----------

type rpmJob struct {
	id      uint32
	payload []byte
}

type clientResult struct {
	code    ErrorCode
	fields  Fields
	payload []byte
	subs    map[uint32]subResult
	b2c     []byte // the raw bytes the client received
}

type subResult struct {
	status  ErrorCode
	payload []byte
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

// runClient sends one request the way the Sigul client does: inner
// ClientHello first, then the request, the inner message, the reply, and
// for sign-rpms the sub-phase.
func runClient(conn *tls.Conn, p *testPKI, ver uint16, fields Fields, payload []byte, secrets Fields, rpms []rpmJob) (*clientResult, error) {
	tap := &tapReader{r: conn}
	m := NewMux(struct {
		io.Reader
		io.Writer
	}{tap, conn}, nil)
	inner := tls.Client(m.InnerConn(), p.clientCfg("server.test", p.client, ver))
	hs := make(chan error, 1)
	go func() { hs <- inner.Handshake() }()

	h, err := NewRequestHeader(fields, uint64(len(payload)))
	if err != nil {
		return nil, err
	}
	psum, err := WriteRequest(m.Writer(Outer), h, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	if err := <-hs; err != nil {
		return nil, fmt.Errorf("inner handshake: %w", err)
	}
	keys, err := GenerateReplyKeys(nil)
	if err != nil {
		return nil, err
	}
	msg, err := NewInnerMessage(h, psum, keys)
	if err != nil {
		return nil, err
	}
	for _, f := range secrets {
		msg.Fields.Set(f.Key, f.Value)
	}
	var sk SubKeys
	if h.Op() == "sign-rpms" {
		if sk, err = GenerateSubKeys(nil); err != nil {
			return nil, err
		}
		if err := msg.SetSubKeys(sk); err != nil {
			return nil, err
		}
	}
	b, err := msg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if _, err := inner.Write(b); err != nil {
		return nil, err
	}
	if err := inner.Close(); err != nil {
		return nil, err
	}

	rh, data, err := ReadReply(m.Reader(Outer), keys, 1<<30)
	if err != nil {
		return nil, err
	}
	res := &clientResult{code: rh.Code(), fields: rh.Fields(), payload: data, subs: map[uint32]subResult{}}
	if h.Op() == "sign-rpms" && rh.Code() == CodeOK {
		werr := make(chan error, 1)
		go func() {
			sw := NewSubRequestWriter(m.Writer(Outer), sk)
			for _, j := range rpms {
				var f Fields
				f.SetU32(FieldID, j.id)
				if _, err := sw.Write(f, uint64(len(j.payload)), bytes.NewReader(j.payload)); err != nil {
					werr <- err
					return
				}
			}
			werr <- m.Writer(Outer).Close() // required after the last sub-request (§7.1)
		}()
		rr := NewSubReplyReader(m.Reader(Outer), sk, 1<<30)
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
			id, _ := s.Header.Fields().U32(FieldID)
			res.subs[id] = subResult{status: s.Header.Status(), payload: d}
		}
		if err := <-werr; err != nil {
			return nil, err
		}
	} else {
		// Make sure the bridge's outer EOF follows the reply.
		if n, err := m.Reader(Outer).Read(make([]byte, 1)); n != 0 || err != io.EOF {
			return nil, fmt.Errorf("expected the bridge's outer EOF, got %d bytes, %v", n, err)
		}
		if err := m.Writer(Outer).Close(); err != nil {
			return nil, err
		}
	}
	if err := m.Drain(Outer, Inner); err != nil {
		return nil, err
	}
	conn.Close()
	tap.mu.Lock()
	res.b2c = bytes.Clone(tap.buf.Bytes())
	tap.mu.Unlock()
	return res, nil
}

// runServer handles one request as the server: request, payload, inner
// session, checks of §4.3, a reply, the sign-rpms sub-phase.
func runServer(conn *tls.Conn, p *testPKI, ver uint16) error {
	defer conn.Close()
	m := NewMux(conn, nil)
	h, err := ReadRequestHeader(m.Reader(Outer))
	if err != nil {
		return err
	}
	spec, ok := LookupOp(h.Op())
	if !ok {
		return fmt.Errorf("unknown op %q", h.Op())
	}
	if spec.ServerPayload == PayloadNone && h.PayloadLen() != 0 {
		return errors.New("payload for a NONE op")
	}
	pr := h.Payload(m.Reader(Outer))
	payload, err := io.ReadAll(pr)
	if err != nil {
		return err
	}
	inner := tls.Server(m.InnerConn(), p.serverCfg(p.server, ver))
	msg, err := ReadInnerMessage(inner)
	if err != nil {
		return err
	}
	cn := inner.ConnectionState().PeerCertificates[0].Subject.CommonName
	if err := inner.Close(); err != nil { // close_notify + inner EOF, before the reply
		return err
	}
	if _, err := msg.Verify(h, pr.SHA512()); err != nil {
		return err
	}
	keys, err := msg.ReplyKeys()
	if err != nil {
		return err
	}
	w := m.Writer(Outer)
	pw, _ := msg.Fields.Lookup("passphrase")
	if cn != h.User() || string(pw) != "right" {
		if err := WriteReply(w, keys, CodeAuthenticationFailed, nil, 0, nil); err != nil {
			return err
		}
	} else {
		switch h.Op() {
		case "list-keys":
			var f Fields
			f.SetU32("num-keys", 2)
			body := []byte("key (gnupg)\x00rsakey (RSA)\x00")
			err = WriteReply(w, keys, CodeOK, f, uint64(len(body)), bytes.NewReader(body))
		case "sign-data":
			sum := sha256.Sum256(payload)
			err = WriteReply(w, keys, CodeOK, nil, 32, bytes.NewReader(sum[:]))
		case "sign-rpms":
			sk, kerr := msg.SubKeys()
			if kerr != nil {
				return kerr
			}
			if err = WriteReply(w, keys, CodeOK, nil, 0, nil); err != nil {
				return err
			}
			sr := NewSubRequestReader(m.Reader(Outer), sk, DefaultMaxFilePayload)
			sw := NewSubReplyWriter(w, sk)
			for {
				s, err := sr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				d, err := io.ReadAll(s.Payload)
				status := CodeOK
				if errors.Is(err, ErrIntegrity) {
					status = CodeUnauthenticatedRPM
				} else if err != nil {
					return err
				}
				if bytes.HasPrefix(d, []byte("corrupt")) {
					status = CodeCorruptRPM
				}
				f, _ := SubReplyFields(s.Header.ID(), status)
				var out []byte
				if status == CodeOK {
					out = append([]byte("signed:"), d...)
				}
				if _, err := sw.Write(f, uint64(len(out)), bytes.NewReader(out)); err != nil {
					return err
				}
			}
		}
		if err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return m.Drain() // until the bridge closes (§2.7)
}

// runBridge relays one request between a client and a server connection
// as §4.2 describes, with the canonical chunking of §2.5.
func runBridge(cc, sc *tls.Conn) error {
	defer sc.Close()
	defer cc.Close()
	cm, sm := NewMux(cc, nil), NewMux(sc, nil)
	h, err := ReadRequestHeader(cm.Reader(Outer))
	if err != nil {
		return err
	}
	spec, err := ValidateRequest(h)
	if err != nil {
		return err
	}
	if err := WriteCanonicalRequest(sm.ChunkWriter(), h, h.PayloadLen(), h.Payload(cm.Reader(Outer))); err != nil {
		return err
	}
	// Inner phase: relay chunks verbatim until an inner EOF went each way.
	relay := func(from *Mux, to *ChunkWriter) error {
		for {
			b, err := from.Reader(Inner).ReadChunk()
			if err == io.EOF {
				return to.WriteEOF(Inner)
			}
			if err != nil {
				return err
			}
			if err := to.WriteChunk(Inner, b); err != nil {
				return err
			}
		}
	}
	errc := make(chan error, 2)
	go func() { errc <- relay(cm, sm.ChunkWriter()) }()
	go func() { errc <- relay(sm, cm.ChunkWriter()) }()
	for range 2 {
		if err := <-errc; err != nil {
			return err
		}
	}
	// Reply, forwarded only now.
	rh, err := ReadRelayReplyHeader(sm.Reader(Outer))
	if err != nil {
		return err
	}
	p, err := NewRelayPayloadReader(sm.Reader(Outer), 1<<40, "reply payload")
	if err != nil {
		return err
	}
	if err := WriteCanonicalItem(cm.ChunkWriter(), rh.Bytes(), p); err != nil {
		return err
	}
	if spec.SubRequests && rh.Code() == CodeOK {
		go func() {
			seen := map[string]bool{}
			for {
				q, err := ReadRelaySubRequestHeader(cm.Reader(Outer))
				if err == io.EOF {
					errc <- sm.ChunkWriter().WriteEOF(Outer)
					return
				}
				if err != nil {
					errc <- err
					return
				}
				pl, err := NewRelayPayloadReader(cm.Reader(Outer), BridgeMaxSubRequestPayload, "sub-request payload")
				if err == nil {
					err = ValidateSubRequest(q, pl.Len())
				}
				if err == nil && seen[string(q.ID())] {
					err = errors.New("repeated sub-request id")
				}
				if err != nil {
					errc <- err
					return
				}
				seen[string(q.ID())] = true
				if err := WriteCanonicalItem(sm.ChunkWriter(), q.Bytes(), pl); err != nil {
					errc <- err
					return
				}
			}
		}()
		go func() {
			for {
				a, err := ReadRelaySubReplyHeader(sm.Reader(Outer))
				if err == io.EOF {
					errc <- nil
					return
				}
				if err != nil {
					errc <- err
					return
				}
				pl, err := NewRelayPayloadReader(sm.Reader(Outer), 1<<40, "sub-reply payload")
				if err != nil {
					errc <- err
					return
				}
				if err := WriteCanonicalItem(cm.ChunkWriter(), a.Bytes(), pl); err != nil {
					errc <- err
					return
				}
			}
		}()
		for range 2 {
			if err := <-errc; err != nil {
				return err
			}
		}
	}
	if err := cm.ChunkWriter().WriteEOF(Outer); err != nil {
		return err
	}
	return cm.Drain(Outer) // C's outer EOF or its close, then close C, then S
}

func TestClientBridgeServer(t *testing.T) {
	p := getPKI(t)
	bigPayload := make([]byte, 300_000)
	rand.Read(bigPayload)
	str := func(kv ...string) Fields {
		var f Fields
		for i := 0; i < len(kv); i += 2 {
			must(t, f.SetStr(kv[i], kv[i+1]))
		}
		return f
	}
	right, wrong := str("passphrase", "right"), str("passphrase", "wrong")
	for _, tc := range []struct {
		name    string
		ver     uint16
		fields  Fields
		payload []byte
		secrets Fields
		rpms    []rpmJob
		check   func(t *testing.T, r *clientResult)
	}{
		{"list-keys", tls.VersionTLS12, str("op", "list-keys", "user", "alice"), nil, right, nil, func(t *testing.T, r *clientResult) {
			n, _ := r.fields.U32("num-keys")
			if r.code != CodeOK || n != 2 || string(r.payload) != "key (gnupg)\x00rsakey (RSA)\x00" {
				t.Fatalf("%v %d %q", r.code, n, r.payload)
			}
		}},
		{"sign-data", tls.VersionTLS13, str("key", "k", "op", "sign-data", "user", "alice"), bigPayload, right, nil, func(t *testing.T, r *clientResult) {
			sum := sha256.Sum256(bigPayload)
			if r.code != CodeOK || !bytes.Equal(r.payload, sum[:]) {
				t.Fatal(r.code)
			}
		}},
		{"auth-failed", tls.VersionTLS12, str("key", "k", "op", "sign-data", "user", "alice"), []byte("x"), wrong, nil, func(t *testing.T, r *clientResult) {
			if r.code != CodeAuthenticationFailed || len(r.payload) != 0 {
				t.Fatal(r.code)
			}
		}},
		{"user is not the CN", tls.VersionTLS12, str("op", "list-keys", "user", "mallory"), nil, right, nil, func(t *testing.T, r *clientResult) {
			if r.code != CodeAuthenticationFailed {
				t.Fatal(r.code)
			}
		}},
		{"sign-rpms", tls.VersionTLS13, str("key", "k", "op", "sign-rpms", "user", "alice"), nil, right,
			[]rpmJob{{7, []byte("rpm one")}, {8, []byte("corrupt rpm")}, {9, bigPayload}, {10, []byte("last")}},
			func(t *testing.T, r *clientResult) {
				if r.code != CodeOK || len(r.subs) != 4 {
					t.Fatalf("%v, %d sub-replies", r.code, len(r.subs))
				}
				if s := r.subs[8]; s.status != CodeCorruptRPM || len(s.payload) != 0 {
					t.Fatal("failed RPM")
				}
				// The sub-replies after a failed one still verify (§7.5).
				if s := r.subs[9]; s.status != CodeOK || !bytes.Equal(s.payload, append([]byte("signed:"), bigPayload...)) {
					t.Fatal("RPM after the failure")
				}
				if string(r.subs[10].payload) != "signed:last" {
					t.Fatal("last RPM")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, bcc := tlsPair(t, p)  // client <-> bridge
			ssc, bsc := tlsPair(t, p) // server <-> bridge (the server dials)
			var wg sync.WaitGroup
			var bErr, sErr error
			wg.Add(2)
			go func() { defer wg.Done(); bErr = runBridge(bcc, bsc) }()
			go func() { defer wg.Done(); sErr = runServer(ssc, p, tc.ver) }()
			res, cErr := runClient(cc, p, tc.ver, tc.fields, tc.payload, tc.secrets, tc.rpms)
			wg.Wait()
			if cErr != nil || bErr != nil || sErr != nil {
				t.Fatalf("client: %v\nbridge: %v\nserver: %v", cErr, bErr, sErr)
			}
			tc.check(t, res)
			// What the client received is in the bridge's canonical layout:
			// every inner chunk before the first outer chunk, the reply
			// header in one chunk, an outer EOF last (§2.5).
			pl := parseLeg(t, res.b2c)
			seenOuter := false
			for _, c := range pl.chunks {
				if c.Stream == Outer {
					seenOuter = true
				} else if seenOuter {
					t.Fatal("inner chunk after outer data towards the client")
				}
			}
			if len(pl.outerCh) < 4 || !pl.outerCh[len(pl.outerCh)-1].IsEOF() || len(pl.outerCh[1].Data) != 8 {
				t.Fatalf("b2c layout %s", chunkList(pl.outerCh))
			}
			if _, err := ReadRelayReplyHeader(bytes.NewReader(pl.outerCh[0].Data)); err != nil {
				t.Fatalf("first outer chunk is not a whole reply header: %v", err)
			}
		})
	}
}
