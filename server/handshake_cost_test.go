package server

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/signet-project/signet/internal/testpki"
)

// BenchmarkHandshakeCost measures the server's own CPU for the two TLS
// handshakes protocol v1 asks of it on every request, with the certificates
// a deployment uses (ECDSA P-256) and Go's default key exchange
// (X25519MLKEM768): the outer connection to the bridge, resumed from a
// session ticket (the server is the TLS client), and the inner session
// with the client, in full (the server is the TLS server and checks the
// client's certificate; Sigul's clients cannot resume it). The peer's CPU
// is not counted: the measured side runs on a locked OS thread and reports
// that thread's CPU clock, as server-us/op, to set beside C_Sign's cost
// from hsm's BenchmarkSign. It is the floor the protocol's cryptography
// sets, with the few system calls of one handshake on loopback.
//
//	go test -run '^$' -bench HandshakeCost ./server/
func BenchmarkHandshakeCost(b *testing.B) {
	ca := testpki.New(b, "bench CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	server := ca.MustIssue(b, testpki.Leaf{CN: "server", DNSNames: []string{"server"},
		EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	peer := ca.MustIssue(b, testpki.Leaf{CN: "peer", DNSNames: []string{"peer"},
		EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})

	// Go's default key exchange, and X25519 alone to show what the
	// post-quantum half costs.
	for _, kx := range []struct {
		name   string
		curves []tls.CurveID
	}{{"default", nil}, {"x25519", []tls.CurveID{tls.X25519}}} {
		b.Run("outer-resumed/"+kx.name, func(b *testing.B) {
			// The server dials the bridge (named "peer" here) with its own
			// certificate and a session cache, as Dialer does.
			ours := &tls.Config{Certificates: []tls.Certificate{server.TLS}, RootCAs: pool, ServerName: "peer",
				MinVersion: tls.VersionTLS13, ClientSessionCache: tls.NewLRUClientSessionCache(8), CurvePreferences: kx.curves}
			bridge := &tls.Config{Certificates: []tls.Certificate{peer.TLS}, ClientCAs: pool,
				ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
			handshake(b, func(c net.Conn) *tls.Conn { return tls.Client(c, ours) },
				func(c net.Conn) *tls.Conn { return tls.Server(c, bridge) }, true)
		})
		b.Run("inner-full/"+kx.name, func(b *testing.B) {
			ours := &tls.Config{Certificates: []tls.Certificate{server.TLS}, ClientCAs: pool,
				ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true}
			client := &tls.Config{Certificates: []tls.Certificate{peer.TLS}, RootCAs: pool, ServerName: "server",
				MinVersion: tls.VersionTLS13, CurvePreferences: kx.curves}
			handshake(b, func(c net.Conn) *tls.Conn { return tls.Server(c, ours) },
				func(c net.Conn) *tls.Conn { return tls.Client(c, client) }, false)
		})
	}
}

// handshake runs b.N handshakes between ours and theirs over loopback TCP
// and reports the CPU time of our side alone. A warm-up handshake first
// fills the session cache; after it, every handshake must resume, or none.
func handshake(b *testing.B, ours, theirs func(net.Conn) *tls.Conn, resume bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	one := func(warm bool) (int64, error) {
		done := make(chan error, 1)
		go func() {
			z, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			t := theirs(z)
			err = t.Handshake()
			t.Close() // after any session tickets
			done <- err
		}()
		a, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return 0, err
		}
		defer a.Close()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c := ours(a)
		t0 := threadCPU()
		err = c.Handshake()
		if err == nil {
			var buf [1]byte
			c.Read(buf[:]) // takes in a ticket, then the peer's close
		}
		cpu := threadCPU() - t0
		if terr := <-done; err == nil {
			err = terr
		}
		if err == nil && !warm && c.ConnectionState().DidResume != resume {
			b.Fatalf("handshake resumed: %v, want %v", c.ConnectionState().DidResume, resume)
		}
		return cpu, err
	}
	if _, err := one(true); err != nil {
		b.Fatal(err)
	}
	var total int64
	b.ResetTimer()
	for range b.N {
		cpu, err := one(false)
		if err != nil {
			b.Fatal(err)
		}
		total += cpu
	}
	b.ReportMetric(float64(total)/float64(b.N)/1e3, "server-us/op")
}

func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return ts.Nano()
}
