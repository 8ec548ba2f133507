package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/bridge"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
)

// bridgedFixture is a real signet bridge (package bridge) with the
// server's ConnServer and Dialer behind it, in-process, and clients that
// speak through the bridge's client port.
type bridgedFixture struct {
	*connFixture
	b          *bridge.Bridge
	clientAddr string
}

func newBridgedFixture(t *testing.T, bridgeReuse, serverReuse bool) *bridgedFixture {
	f := newOps(t)
	pki := newPKI(t)
	b, err := bridge.New(bridge.Config{Certificate: pki.leaf("127.0.0.1"), CA: pki.pool, ServerNames: []string{"signet-server.test"},
		NoServerReuse: !bridgeReuse, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
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
	served := make(chan error, 1)
	go func() { served <- b.Serve(cl, sl) }()

	srvCert := pki.leaf("signet-server.test")
	cs := &server.ConnServer{Handlers: f.h, InnerTLS: &tls.Config{Certificates: []tls.Certificate{srvCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool}}
	d := &server.Dialer{Addr: sl.Addr().String(), TLS: &tls.Config{Certificates: []tls.Certificate{srvCert}, RootCAs: pki.pool},
		Idle: 2, Max: 4, Serve: cs.Serve, NoReuse: !serverReuse}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		b.Shutdown(sctx)
		<-served
	})
	return &bridgedFixture{connFixture: &connFixture{opsFixture: f, pki: pki, dialer: d}, b: b, clientAddr: cl.Addr().String()}
}

// open connects to the bridge's client port as cn and starts a request.
func (f *bridgedFixture) open(cn string, fields, secrets map[string]string, payload []byte, sub *protocol.SubKeys) (net.Conn, *protocol.Mux, protocol.ReplyKeys) {
	f.t.Helper()
	conn, err := tls.Dial("tcp", f.clientAddr, &tls.Config{Certificates: []tls.Certificate{f.pki.leaf(cn)}, RootCAs: f.pki.pool})
	if err != nil {
		f.t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	m, keys, err := f.send(conn, cn, fields, secrets, payload, sub)
	if err != nil {
		conn.Close()
		f.t.Fatal(err)
	}
	return conn, m, keys
}

// do sends one ordinary request through the bridge and returns its
// verified reply, ending the connection as a client does (§2.7).
func (f *bridgedFixture) do(cn string, fields, secrets map[string]string, payload []byte) *reply {
	f.t.Helper()
	conn, m, keys := f.open(cn, fields, secrets, payload, nil)
	defer conn.Close()
	rh, body, err := protocol.ReadReply(m.Reader(protocol.Outer), keys, 1<<30)
	if err != nil {
		f.t.Fatalf("%s: %v", fields["op"], err)
	}
	m.Writer(protocol.Outer).Close()
	if err := m.Drain(protocol.Outer); err != nil {
		f.t.Fatalf("%s: after the reply: %v", fields["op"], err)
	}
	return &reply{rh.Code(), rh.Fields(), body}
}

// signRPMs signs items with sign-rpms through the bridge and returns the
// sub-replies' statuses, each MAC-checked.
func (f *bridgedFixture) signRPMs(items [][]byte) []protocol.ErrorCode {
	f.t.Helper()
	sk, err := protocol.GenerateSubKeys(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	conn, m, keys := f.open("alice", fieldsName("op", "sign-rpms", "user", "alice", "key", "fedora"), alicePass, nil, &sk)
	defer conn.Close()
	if rh, _, err := protocol.ReadReply(m.Reader(protocol.Outer), keys, 1<<20); err != nil || rh.Code() != protocol.CodeOK {
		f.t.Fatalf("sign-rpms reply: %v, %v", rh, err)
	}
	sent := sendSubRequests(m, sk, items)
	rr := protocol.NewSubReplyReader(m.Reader(protocol.Outer), sk, 1<<30)
	var got []protocol.ErrorCode
	for {
		s, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.t.Fatalf("sub-reply %d: %v", len(got), err)
		}
		if err := s.Payload.Finish(); err != nil {
			f.t.Fatalf("sub-reply %d payload: %v", len(got), err)
		}
		got = append(got, s.Header.Status())
	}
	if err := <-sent; err != nil {
		f.t.Fatal(err)
	}
	m.Drain(protocol.Outer)
	return got
}

// bridgeMetric reads one unlabelled counter or gauge from the bridge's
// metrics.
func bridgeMetric(t *testing.T, b *bridge.Bridge, name string) float64 {
	t.Helper()
	w := httptest.NewRecorder()
	b.MetricsHandler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(w.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestBridgedReuse runs signet's bridge and server together: with the
// extension on both, requests (ordinary and sign-rpms) share the
// server's few connections; with it off on either side, each request has
// a connection of its own. Every reply is checked, signatures by gpg.
func TestBridgedReuse(t *testing.T) {
	t.Parallel()
	good := realRPM(t, "payload-test-0.1-w9.gzdio.x86_64.rpm")
	for _, tc := range []struct {
		name                     string
		bridgeReuse, serverReuse bool
	}{{"both", true, true}, {"bridge off", false, true}, {"server off", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newBridgedFixture(t, tc.bridgeReuse, tc.serverReuse)
			k, _ := f.a.Store.GetKey(context.Background(), "fedora")
			cert, _ := armorCert(k.PGPCertificate)
			const n = 9
			for i := range n {
				switch i % 3 {
				case 0:
					r := f.do("root", map[string]string{"op": "list-users", "user": "root"}, rootPW, nil)
					if r.code != 0 || namesOf(r.payload) != "alice,bob,root," {
						t.Fatalf("request %d, list-users: %+v", i, r)
					}
				case 1:
					data := bytes.Repeat([]byte{'a' + byte(i)}, 2<<20)
					r := f.do("alice", map[string]string{"op": "sign-data", "user": "alice", "key": "fedora"}, alicePass, data)
					if r.code != 0 {
						t.Fatalf("request %d, sign-data: %+v", i, r)
					}
					gpgVerify(t, cert, r.payload, data)
				case 2:
					got := f.signRPMs([][]byte{good, []byte("not an rpm"), good})
					want := []protocol.ErrorCode{protocol.CodeOK, protocol.CodeCorruptRPM, protocol.CodeOK}
					if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
						t.Fatalf("request %d, sign-rpms: statuses %v, want %v", i, got, want)
					}
				}
			}
			reused := f.dialer.Reused()
			t.Logf("%d of %d requests on reused connections; dialer %+v", reused, n, f.dialer.Stats())
			onBridge := bridgeMetric(t, f.b, "signet_bridge_reused_server_connection_requests_total")
			if float64(reused) != onBridge {
				t.Fatalf("the server counts %d requests on reused connections, the bridge %v", reused, onBridge)
			}
			if !tc.bridgeReuse || !tc.serverReuse {
				if reused != 0 {
					t.Fatalf("%d requests on reused connections without the extension on both sides", reused)
				}
				return
			}
			// At most Max (4) connections ever carried a first request.
			if reused < n-4 {
				t.Fatalf("only %d of %d requests came on a reused connection", reused, n)
			}
			if s := f.dialer.Stats(); s.Total > 4 {
				t.Fatalf("dialer stats %+v: more than Max connections", s)
			}
		})
	}
}
