package client_test

// A real signet server (SoftHSM2 token, SQLite store, server.Handlers,
// ConnServer, Dialer) behind a minimal in-test relay that plays the bridge:
// it accepts one client TLS connection and one server connection and copies
// bytes both ways, optionally changing bytes of the server's outer stream.
// Real TLS on 127.0.0.1 with certificates made here.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
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
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Main(m)) }

var cheapKDF = hsm.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}

const (
	rootPW    = "root pw"
	alicePass = "alice pass"
	serverCN  = "signet-server.test"
)

type testEnv struct {
	t     *testing.T
	dir   string
	admin *server.Admin
	relay *relay
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	ctx := context.Background()
	e := &testEnv{t: t, dir: t.TempDir()}

	// PKI: a CA, the bridge (IP SAN), the server (CN only, as Sigul's
	// certutil recipe makes them), a client certificate per user.
	e.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, e.caKey.Public(), e.caKey)
	if err != nil {
		t.Fatal(err)
	}
	e.ca, _ = x509.ParseCertificate(der)
	writePEM(t, filepath.Join(e.dir, "ca.pem"), "CERTIFICATE", der)
	pool := x509.NewCertPool()
	pool.AddCert(e.ca)
	bridgeCert := e.leaf("127.0.0.1", true, x509.ExtKeyUsageServerAuth)
	srvCert := e.leaf(serverCN, false, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)

	// Server: token, store, users and a key.
	tk := softhsmtest.New(t)
	tok := tk.Open(t)
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "signet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.admin = &server.Admin{Store: st, Token: tok, TokenName: tk.Label, PIN: tk.PIN, KDF: cheapKDF,
		Actor: "tester@host", Transcript: io.Discard}
	for _, u := range []struct {
		name  string
		admin bool
		pw    string
	}{{"root", true, rootPW}, {"alice", false, ""}, {"bob", false, ""}} {
		var pw []byte
		if u.pw != "" {
			pw = []byte(u.pw)
		}
		if err := e.admin.AddUser(ctx, u.name, u.admin, pw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.admin.GenerateKey(ctx, server.NewKeyRequest{Name: "fedora", Type: hsm.Ed25519,
		UserIDs: []string{"Fedora <f@example.org>"}, Owner: "alice", OwnerPassphrase: []byte(alicePass)}); err != nil {
		t.Fatal(err)
	}
	au, err := server.NewAuthenticator(st, cheapKDF, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h := &server.Handlers{Store: st, Token: tok, Auth: au, TokenName: tk.Label, PIN: tk.PIN, KDF: cheapKDF}

	// The relay ("bridge").
	e.relay = startRelay(t, &tls.Config{Certificates: []tls.Certificate{bridgeCert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert})
	cs := &server.ConnServer{Handlers: h, InnerTLS: &tls.Config{Certificates: []tls.Certificate{srvCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}}
	d := &server.Dialer{Addr: e.relay.serverLn.Addr().String(),
		TLS:  &tls.Config{Certificates: []tls.Certificate{srvCert}, RootCAs: pool},
		Idle: 2, Max: 4, Serve: cs.Serve}
	dctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(dctx); close(done) }()
	t.Cleanup(func() { cancel(); e.relay.stop(); <-done })
	return e
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) leaf(cn string, san bool, eku ...x509.ExtKeyUsage) tls.Certificate {
	cert, _, _ := e.leafDER(cn, san, eku...)
	return cert
}

func (e *testEnv) leafDER(cn string, san bool, eku ...x509.ExtKeyUsage) (tls.Certificate, []byte, []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku}
	if san {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, e.ca, key.Public(), e.caKey)
	if err != nil {
		e.t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der, kder
}

// config returns a client configuration for user, with a client
// certificate whose CN is user, written to files.
func (e *testEnv) config(user string) *client.Config {
	certPath := filepath.Join(e.dir, user+".pem")
	keyPath := filepath.Join(e.dir, user+".key")
	if _, err := os.Stat(certPath); err != nil {
		_, der, kder := e.leafDER(user, false, x509.ExtKeyUsageClientAuth)
		writePEM(e.t, certPath, "CERTIFICATE", der)
		writePEM(e.t, keyPath, "PRIVATE KEY", kder)
	}
	_, port, _ := net.SplitHostPort(e.relay.clientLn.Addr().String())
	p, _ := strconv.Atoi(port)
	return &client.Config{BridgeHost: "127.0.0.1", BridgePort: p, ServerHost: serverCN, UserName: user,
		CAFile: filepath.Join(e.dir, "ca.pem"), CertFile: certPath, KeyFile: keyPath}
}

// configFile writes user's configuration as TOML and returns its path.
func (e *testEnv) configFile(user string) string {
	c := e.config(user)
	path := filepath.Join(e.dir, user+".toml")
	body := fmt.Sprintf("[client]\nbridge-hostname = %q\nbridge-port = %d\nserver-hostname = %q\nuser-name = %q\n"+
		"ca-file = %q\nclient-cert-file = %q\nclient-key-file = %q\n",
		c.BridgeHost, c.BridgePort, c.ServerHost, c.UserName, "ca.pem", user+".pem", user+".key")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// relay is a transparent bridge: one client connection paired with one
// server connection, chunks copied both ways. tamper, if set, may change
// the data of outer chunks from the server; off is the offset of data[0]
// in the server's outer stream.
type relay struct {
	clientLn, serverLn net.Listener
	cfg                *tls.Config
	mu                 sync.Mutex
	tamper             func(off int64, data []byte)
	// tamperUp, if set, may change the client's outer stream (the request)
	// on its way to the server.
	tamperUp func(off int64, data []byte)
	wg       sync.WaitGroup
}

func startRelay(t *testing.T, cfg *tls.Config) *relay {
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{clientLn: cl, serverLn: sl, cfg: cfg}
	r.wg.Add(1)
	go r.run()
	return r
}

func (r *relay) setTamper(f func(off int64, data []byte)) {
	r.mu.Lock()
	r.tamper = f
	r.mu.Unlock()
}

var stopOnce sync.Map

func (r *relay) stop() {
	if _, done := stopOnce.LoadOrStore(r, true); done {
		return
	}
	r.clientLn.Close()
	r.serverLn.Close()
	r.wg.Wait()
}

func (r *relay) run() {
	defer r.wg.Done()
	for {
		cc, err := r.clientLn.Accept()
		if err != nil {
			return
		}
		sc, err := r.serverLn.Accept()
		if err != nil {
			cc.Close()
			return
		}
		r.mu.Lock()
		tp, up := r.tamper, r.tamperUp
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.pair(cc, sc, tp, up)
		}()
	}
}

func (r *relay) pair(cc, sc net.Conn, tamper, tamperUp func(int64, []byte)) {
	deadline := time.Now().Add(60 * time.Second)
	cc.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	c, s := tls.Server(cc, r.cfg), tls.Server(sc, r.cfg)
	defer c.Close()
	defer s.Close()
	if c.Handshake() != nil || s.Handshake() != nil {
		return
	}
	done := make(chan struct{})
	go func() { // client -> server
		relayChunks(c, s, tamperUp)
		s.Close()
		close(done)
	}()
	relayChunks(s, c, tamper)
	c.Close()
	<-done
}

// relayChunks copies chunks from src to dst, letting tamper change the
// outer stream's bytes (off counts outer data bytes).
func relayChunks(src io.Reader, dst io.Writer, tamper func(int64, []byte)) {
	cr, cw := protocol.NewChunkReader(src), protocol.NewChunkWriter(dst)
	var off int64
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
			if tamper != nil {
				tamper(off, ch.Data)
			}
			off += int64(len(ch.Data))
		}
		if cw.WriteChunk(ch.Stream, ch.Data) != nil {
			break
		}
	}
}

// flipAt returns a tamper function that flips one bit of the server's
// outer stream at offset at.
func flipAt(at int64) func(int64, []byte) {
	return func(off int64, data []byte) {
		if at >= off && at < off+int64(len(data)) {
			data[at-off] ^= 0x01
		}
	}
}

// gpgVerify imports cert into a throwaway GNUPGHOME (mode 0700) and checks
// sig over data (detached) or, with data nil, the cleartext-signed sig.
func gpgVerify(t *testing.T, cert, sig, data []byte) {
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

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
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
