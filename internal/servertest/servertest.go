// Package servertest runs a real signet server for the client and CLI
// tests: a SoftHSM2 token, a SQLite store, server.Handlers, ConnServer and
// Dialer behind a minimal Relay that plays the bridge.
//
// It accepts one client TLS connection and one server connection and copies
// bytes both ways, optionally changing bytes of the server's or the
// client's outer stream. Real TLS on 127.0.0.1 with certificates made here.
// Only tests import it: it imports server, which the client must not.
package servertest

// A real signet server (SoftHSM2 token, SQLite store, server.Handlers,
// ConnServer, Dialer) behind a minimal in-test Relay that plays the bridge:
// it accepts one client TLS connection and one server connection and copies
// bytes both ways, optionally changing bytes of the server's outer stream.
// Real TLS on 127.0.0.1 with certificates made here.

import (
	"bytes"
	"context"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/internal/testpki"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// CheapKDF keeps the tests fast; production parameters are hsm.DefaultKDF().
var CheapKDF = hsm.KDFParams{Time: 1, MemoryKiB: 256, Threads: 1}

// CheapPassword is the Argon2id cost of the test administrators' password
// hashes, the smallest the store accepts; production hashes cost
// store.DefaultArgon2Params(), 64 MiB and two passes per check.
var CheapPassword = store.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

// The test users' secrets, and the server's certificate name.
const (
	RootPW    = "root pw"
	AlicePass = "alice pass"
	ServerCN  = "signet-server.test"
)

// Env is a running server with users root (an administrator, password
// RootPW), alice and bob, and an Ed25519 OpenPGP key "fedora" that alice
// may use with AlicePass, behind Relay.
type Env struct {
	t     testing.TB
	Dir   string
	Admin *server.Admin
	// Handlers is the server's operations, for in-process requests (Do).
	Handlers *server.Handlers
	Relay    *Relay
	ca       *testpki.CA
	// relayTLS is the relays' configuration; dial starts a server dialer
	// to a relay's server listener.
	relayTLS *tls.Config
	dial     func(r *Relay)
	token    *softhsmtest.Token
	database string
}

// New starts an Env for t, on a SQLite store of its own; it stops when t
// ends.
func New(t testing.TB) *Env {
	t.Helper()
	return NewOn(t, "")
}

// NewOn is New on the database at location (a SQLite path or a
// postgres:// URL, empty and without a password), named "server-a" in the
// audit log; "" means a SQLite file of its own.
func NewOn(t testing.TB, location string) *Env {
	t.Helper()
	ctx := context.Background()
	e := &Env{t: t, Dir: t.TempDir(), database: location}
	if location == "" {
		e.database = filepath.Join(t.TempDir(), "signet.db")
	}

	// PKI: a CA, the bridge (IP SAN), the server (CN only, as Sigul's
	// certutil recipe makes them), a client certificate per user.
	e.ca = testpki.New(t, "signet test CA")
	if err := e.ca.WriteCert(filepath.Join(e.Dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	pool := e.ca.Pool
	bridgeCert := e.Leaf("127.0.0.1", true, x509.ExtKeyUsageServerAuth)
	srvCert := e.Leaf(ServerCN, false, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)

	// Server: token, store, users and a key.
	tk := softhsmtest.New(t)
	e.token = tk
	tok := tk.Open(t)
	st, err := store.OpenWith(ctx, e.database, store.Options{ServerName: "server-a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.Admin = &server.Admin{Store: st, Token: tok, TokenName: tk.Label, PIN: tk.PIN, KDF: CheapKDF,
		PasswordCost: CheapPassword, Actor: "tester@host", Transcript: io.Discard}
	for _, u := range []struct {
		name  string
		admin bool
		pw    string
	}{{"root", true, RootPW}, {"alice", false, ""}, {"bob", false, ""}} {
		var pw []byte
		if u.pw != "" {
			pw = []byte(u.pw)
		}
		if err := e.Admin.AddUser(ctx, u.name, u.admin, pw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Admin.GenerateKey(ctx, server.NewKeyRequest{Name: "fedora", Type: hsm.Ed25519,
		UserIDs: []string{"Fedora <f@example.org>"}, Owner: "alice", OwnerPassphrase: []byte(AlicePass)}); err != nil {
		t.Fatal(err)
	}
	au, err := server.NewAuthenticator(st, CheapKDF, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	au.PasswordCost = CheapPassword
	h := &server.Handlers{Store: st, Token: tok, Auth: au, TokenName: tk.Label, PIN: tk.PIN, KDF: CheapKDF}
	e.Handlers = h

	// The Relay ("bridge").
	e.relayTLS = &tls.Config{Certificates: []tls.Certificate{bridgeCert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert}
	cs := &server.ConnServer{Handlers: h, InnerTLS: &tls.Config{Certificates: []tls.Certificate{srvCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}}
	e.dial = func(r *Relay) {
		d := &server.Dialer{Addr: r.ServerLn.Addr().String(),
			TLS:  &tls.Config{Certificates: []tls.Certificate{srvCert}, RootCAs: pool},
			Idle: 2, Max: 4, Serve: cs.Serve}
		dctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Run(dctx); close(done) }()
		t.Cleanup(func() { cancel(); r.Stop(); <-done })
	}
	e.Relay = e.AddRelay()
	return e
}

// Peer returns the handlers of another server, named name in the audit
// log, sharing this Env's database (through a store handle of its own) and
// token (through a session pool of its own), with its own authenticator
// and unwrap cache: two servers of one deployment, in-process. Run
// requests on it with DoOn or TryOn.
func (e *Env) Peer(name string) *server.Handlers {
	e.t.Helper()
	st, err := store.OpenWith(context.Background(), e.database, store.Options{ServerName: name})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	tok := e.token.Open(e.t)
	au, err := server.NewAuthenticator(st, CheapKDF, time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	au.PasswordCost = CheapPassword
	return &server.Handlers{Store: st, Token: tok, Auth: au, TokenName: e.token.Label, PIN: e.token.PIN, KDF: CheapKDF}
}

// AddRelay starts another relay (a second bridge) that the same server
// dials, as a server dials every configured bridge.
func (e *Env) AddRelay() *Relay {
	r := StartRelay(e.t, e.relayTLS)
	e.dial(r)
	return r
}

// RelayAddr returns r's client address as a client configuration's
// bridges entry ("127.0.0.1:port").
func RelayAddr(r *Relay) string { return r.ClientLn.Addr().String() }

// AddKey generates a key in the token, with an OpenPGP certificate when
// userIDs are given, and grants it to alice (key admin, AlicePass).
func (e *Env) AddKey(name string, typ hsm.KeyType, userIDs ...string) store.Key {
	e.t.Helper()
	k, err := e.Admin.GenerateKey(context.Background(), server.NewKeyRequest{Name: name, Type: typ, UserIDs: userIDs,
		Owner: "alice", OwnerPassphrase: []byte(AlicePass)})
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// Request is one request to run in-process with Do: outer fields, inner
// secrets and the payload. The payload is marked as authenticated (its
// hash was sent and matched), as a request from signet's client is.
type Request struct {
	Op, User        string
	Fields, Secrets map[string]string
	Payload         []byte
}

// Do runs r through the server's handlers without a connection, as
// ConnServer would after its checks, and returns the reply and its
// payload. A dropped request (no reply) fails the test.
func (e *Env) Do(r Request) (*server.Response, []byte) {
	e.t.Helper()
	return e.DoOn(e.Handlers, r)
}

// DoOn is Do on the handlers h (see Peer).
func (e *Env) DoOn(h *server.Handlers, r Request) (*server.Response, []byte) {
	e.t.Helper()
	resp, body, err := e.TryOn(h, r)
	if err != nil {
		e.t.Fatalf("%s: %v", r.Op, err)
	}
	return resp, body
}

// Try is Do for a request that may be dropped: it returns the error that
// dropped it (wrapping server.ErrDrop) instead of failing the test.
func (e *Env) Try(r Request) (*server.Response, []byte, error) {
	e.t.Helper()
	return e.TryOn(e.Handlers, r)
}

// TryOn is Try on the handlers h (see Peer).
func (e *Env) TryOn(h *server.Handlers, r Request) (*server.Response, []byte, error) {
	e.t.Helper()
	sum := sha512.Sum512(r.Payload)
	req := &server.Request{Op: r.Op, User: r.User, CN: r.User, Fields: map[string][]byte{}, Secrets: map[string][]byte{},
		Payload: bytes.NewReader(r.Payload), PayloadSize: int64(len(r.Payload)), PayloadSHA512: sum[:],
		PayloadAt: bytes.NewReader(r.Payload), PayloadAuthenticated: true}
	for k, v := range r.Fields {
		req.Fields[k] = []byte(v)
	}
	for k, v := range r.Secrets {
		req.Secrets[k] = []byte(v)
	}
	resp, err := h.Serve(context.Background(), req)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Payload)
	if c, ok := resp.Payload.(io.Closer); ok {
		c.Close()
	}
	if err != nil {
		e.t.Fatalf("%s: reading the reply payload: %v", r.Op, err)
	}
	if int64(len(body)) != resp.PayloadSize {
		e.t.Fatalf("%s: payload is %d bytes, PayloadSize says %d", r.Op, len(body), resp.PayloadSize)
	}
	return resp, body, nil
}

// Leaf returns a TLS certificate for cn issued by the Env's CA (with
// localhost and 127.0.0.1 names if san).
func (e *Env) Leaf(cn string, san bool, eku ...x509.ExtKeyUsage) tls.Certificate {
	cert, _, _ := e.LeafDER(cn, san, eku...)
	return cert
}

// LeafDER is Leaf, with the certificate's and the key's DER.
func (e *Env) LeafDER(cn string, san bool, eku ...x509.ExtKeyUsage) (tls.Certificate, []byte, []byte) {
	l := testpki.Leaf{CN: cn, EKU: eku}
	if san {
		l.DNSNames, l.IPs = []string{"localhost"}, testpki.Loopback
	}
	c := e.ca.MustIssue(e.t, l)
	return c.TLS, c.DER, c.KeyDER
}

// Config returns a client configuration for user, with a client
// certificate whose CN is user, written to files.
func (e *Env) Config(user string) *client.Config {
	certPath := filepath.Join(e.Dir, user+".pem")
	keyPath := filepath.Join(e.Dir, user+".key")
	if _, err := os.Stat(certPath); err != nil {
		_, der, kder := e.LeafDER(user, false, x509.ExtKeyUsageClientAuth)
		if err := testpki.WritePEM(certPath, "CERTIFICATE", der, 0o600); err != nil {
			e.t.Fatal(err)
		}
		if err := testpki.WritePEM(keyPath, "PRIVATE KEY", kder, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(e.Relay.ClientLn.Addr().String())
	p, _ := strconv.Atoi(port)
	return &client.Config{BridgeHost: "127.0.0.1", BridgePort: p, ServerHost: ServerCN, UserName: user,
		CAFile: filepath.Join(e.Dir, "ca.pem"), CertFile: certPath, KeyFile: keyPath}
}

// ConfigFile writes user's configuration as TOML and returns its path.
func (e *Env) ConfigFile(user string) string {
	c := e.Config(user)
	path := filepath.Join(e.Dir, user+".toml")
	body := fmt.Sprintf("[client]\nbridge-hostname = %q\nbridge-port = %d\nserver-hostname = %q\nuser-name = %q\n"+
		"ca-file = %q\nclient-cert-file = %q\nclient-key-file = %q\n",
		c.BridgeHost, c.BridgePort, c.ServerHost, c.UserName, "ca.pem", user+".pem", user+".key")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// Relay is a transparent bridge: one client connection paired with one
// server connection, chunks copied both ways. tamper, if set, may change
// the data of outer chunks from the server; off is the offset of data[0]
// in the server's outer stream.
type Relay struct {
	ClientLn, ServerLn net.Listener
	cfg                *tls.Config
	mu                 sync.Mutex
	tamper             func(off int64, data []byte)
	// tamperUp, if set, may change the client's outer stream (the request)
	// on its way to the server.
	tamperUp func(off int64, data []byte)
	// cutAt, if >= 0, makes the relay die when the server's outer stream
	// of a connection reaches that offset (CutAt).
	cutAt     int64
	cutServer bool
	lastDown  int64
	wg        sync.WaitGroup
	// servers holds server connections whose handshake is done, waiting
	// for a client; stop ends the waits.
	servers chan *tls.Conn
	stop    chan struct{}
	once    sync.Once
}

// StartRelay starts a relay with TLS configuration cfg on two loopback
// listeners, for clients and for servers.
func StartRelay(t testing.TB, cfg *tls.Config) *Relay {
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{ClientLn: cl, ServerLn: sl, cfg: cfg, servers: make(chan *tls.Conn), stop: make(chan struct{}), cutAt: -1}
	r.wg.Add(2)
	go r.run()
	go r.acceptServers()
	return r
}

// SetTamper sets (or, with nil, clears) the function that may change the
// server's outer stream on its way to the client, for later connections.
func (r *Relay) SetTamper(f func(off int64, data []byte)) {
	r.mu.Lock()
	r.tamper = f
	r.mu.Unlock()
}

// SetTamperUp is SetTamper for the client's outer stream (the request).
func (r *Relay) SetTamperUp(f func(off int64, data []byte)) {
	r.mu.Lock()
	r.tamperUp = f
	r.mu.Unlock()
}

// CutAt makes the relay die, as a bridge that crashes or loses its
// network, when the server's outer stream of a later connection reaches
// offset off: it forwards nothing from there, closes that connection's
// TCP connections (no TLS close_notify, no EOF chunk) and its listeners,
// so that further connections are refused.
func (r *Relay) CutAt(off int64) {
	r.mu.Lock()
	r.cutAt, r.cutServer = off, false
	r.mu.Unlock()
}

// CutServerAt makes the relay lose its server when the server's outer
// stream of a later connection reaches offset off: the server's TCP
// connection closes there and the client's TLS session ends cleanly but
// without the outer EOF marker, as a bridge does when its server dies.
// The relay keeps serving.
func (r *Relay) CutServerAt(off int64) {
	r.mu.Lock()
	r.cutAt, r.cutServer = off, true
	r.mu.Unlock()
}

// LastDown returns the length of the server's outer stream on the last
// connection that ended.
func (r *Relay) LastDown() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastDown
}

// shut stops accepting: the listeners close and waiting servers are let go.
func (r *Relay) shut() {
	r.once.Do(func() {
		close(r.stop)
		r.ClientLn.Close()
		r.ServerLn.Close()
	})
}

// Stop closes the listeners and waits for the relayed connections.
func (r *Relay) Stop() {
	r.shut()
	r.wg.Wait()
}

// acceptServers completes each server connection's handshake as soon as
// it arrives, as a bridge does: a server's dial waits for its handshake,
// and gives up (and dials again) if it waits too long. The connection
// then waits for a client.
func (r *Relay) acceptServers() {
	defer r.wg.Done()
	for {
		sc, err := r.ServerLn.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			sc.SetDeadline(time.Now().Add(60 * time.Second))
			s := tls.Server(sc, r.cfg)
			if s.Handshake() != nil {
				s.Close()
				return
			}
			sc.SetDeadline(time.Time{})
			select {
			case r.servers <- s:
			case <-r.stop:
				s.Close()
			}
		}()
	}
}

func (r *Relay) run() {
	defer r.wg.Done()
	for {
		cc, err := r.ClientLn.Accept()
		if err != nil {
			return
		}
		var s *tls.Conn
		select {
		case s = <-r.servers:
		case <-r.stop:
			cc.Close()
			return
		}
		r.mu.Lock()
		tp, up, cut, server := r.tamper, r.tamperUp, r.cutAt, r.cutServer
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.pair(cc, s, tp, up, cut, server)
		}()
	}
}

func (r *Relay) pair(cc net.Conn, s *tls.Conn, tamper, tamperUp func(int64, []byte), cut int64, serverOnly bool) {
	deadline := time.Now().Add(60 * time.Second)
	cc.SetDeadline(deadline)
	s.SetDeadline(deadline)
	c := tls.Server(cc, r.cfg)
	defer c.Close()
	defer s.Close()
	if c.Handshake() != nil {
		return
	}
	done := make(chan struct{})
	go func() { // client -> server
		relayChunks(c, s, tamperUp, -1)
		s.Close()
		close(done)
	}()
	down, cutOff := relayChunks(s, c, tamper, cut)
	r.mu.Lock()
	r.lastDown = down
	r.mu.Unlock()
	switch {
	case cutOff && serverOnly:
		s.NetConn().Close()
	case cutOff:
		// Die: the raw connections close under TLS, the listeners too.
		cc.Close()
		s.NetConn().Close()
		r.shut()
	}
	c.Close()
	<-done
}

// relayChunks copies chunks from src to dst, letting tamper change the
// outer stream's bytes (off counts outer data bytes), until the outer
// stream would pass cut (if cut >= 0). It returns the outer bytes copied
// and whether it stopped at cut.
func relayChunks(src io.Reader, dst io.Writer, tamper func(int64, []byte), cut int64) (off int64, cutOff bool) {
	cr, cw := protocol.NewChunkReader(src), protocol.NewChunkWriter(dst)
	for {
		ch, err := cr.ReadChunk(protocol.MaxChunkLen)
		if err != nil {
			break
		}
		if ch.IsEOF() {
			if cw.WriteEOF(ch.Stream) != nil {
				break
			}
			continue
		}
		if ch.Stream == protocol.Outer {
			if cut >= 0 && off+int64(len(ch.Data)) > cut {
				return off, true
			}
			if tamper != nil {
				tamper(off, ch.Data)
			}
			off += int64(len(ch.Data))
		}
		if cw.WriteChunk(ch.Stream, ch.Data) != nil {
			break
		}
	}
	return off, false
}

// FlipAt returns a tamper function that flips one bit of the server's
// outer stream at offset at.
func FlipAt(at int64) func(int64, []byte) {
	return func(off int64, data []byte) {
		if at >= off && at < off+int64(len(data)) {
			data[at-off] ^= 0x01
		}
	}
}

// GPGVerify imports cert into a throwaway GNUPGHOME (mode 0700) and checks
// sig over data (detached) or, with data nil, the cleartext-signed sig.
func GPGVerify(t testing.TB, cert, sig, data []byte) {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	defer exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	files := map[string][]byte{"cert.asc": cert, "sig": sig}
	if data != nil {
		files["data"] = data
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...)
		cmd.Dir = dir
		return cmd.CombinedOutput()
	}
	if out, err := run("--import", "cert.asc"); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	args := []string{"--verify", "sig"}
	if data != nil {
		args = append(args, "data")
	}
	if out, err := run(args...); err != nil || !bytes.Contains(out, []byte("Good signature")) {
		t.Fatalf("gpg --verify: %v\n%s", err, out)
	}
	// A changed input must not verify.
	if data != nil {
		os.WriteFile(filepath.Join(dir, "data"), append(bytes.Clone(data), 'x'), 0o600)
	} else {
		os.WriteFile(filepath.Join(dir, "sig"), bytes.Replace(sig, []byte("signet"), []byte("signeT"), 1), 0o600)
	}
	if out, err := run(args...); err == nil {
		t.Fatalf("gpg --verify accepted a changed input:\n%s", out)
	}
}

// DirNames lists the names in dir.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
