package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"path/filepath"
	"testing"
)

// A client and a server with certificates from one CA complete a mutually
// authenticated TLS handshake; a certificate from another CA is refused.
func TestHandshake(t *testing.T) {
	ca, other := New(t, "test CA"), New(t, "other CA")
	srv := ca.MustIssue(t, Leaf{CN: "server.test", DNSNames: []string{"server.test"}, IPs: Loopback, EKU: Server})
	good := ca.MustIssue(t, Leaf{CN: "alice", EKU: Client})
	bad := other.MustIssue(t, Leaf{CN: "alice", EKU: Client})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srv.TLS},
		ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.WriteString(c, "hi"); c.Close() }()
		}
	}()
	dial := func(c *Cert) error {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool, ServerName: "server.test",
			Certificates: []tls.Certificate{c.TLS}})
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = io.ReadAll(conn)
		return err
	}
	if err := dial(good); err != nil {
		t.Fatalf("a certificate of the CA: %v", err)
	}
	if err := dial(bad); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	leaf, _ := x509.ParseCertificate(srv.DER)
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
}

func TestWrite(t *testing.T) {
	ca := New(t, "test CA")
	c := ca.MustIssue(t, Leaf{CN: "server", IPs: []net.IP{net.IPv6loopback}})
	dir := t.TempDir()
	if err := ca.WriteCert(filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(filepath.Join(dir, "c.pem"), filepath.Join(dir, "c-key.pem")); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "c.pem"), filepath.Join(dir, "c-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the written certificate does not chain to the CA: %v", err)
	}
}
