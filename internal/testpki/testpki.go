// Package testpki is the one throwaway certificate authority of signet's
// tests: a CA and the TLS certificates it issues (ECDSA P-256, valid from
// an hour ago for a day), as tls.Certificate values, DER or PEM files.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// CA is a certificate authority. Pool holds its certificate alone.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	Pool *x509.CertPool
}

// Leaf describes a certificate to issue. KeyUsage is always
// digitalSignature; an empty EKU list leaves the extension out (as
// Sigul's certutil recipe does).
type Leaf struct {
	CN       string
	DNSNames []string
	IPs      []net.IP
	EKU      []x509.ExtKeyUsage
}

// Cert is an issued certificate with its key.
type Cert struct {
	TLS    tls.Certificate
	DER    []byte
	Key    *ecdsa.PrivateKey
	KeyDER []byte // PKCS#8
}

var (
	// Server is the extended key usage of a TLS server.
	Server = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	// Client is the extended key usage of a TLS client.
	Client = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	// Both is a certificate that is a TLS server and a TLS client, as
	// signet-server's is (it dials the bridge and is the inner session's
	// server).
	Both = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	// Loopback is the IP address of loopback certificates.
	Loopback = []net.IP{net.IPv4(127, 0, 0, 1)}
)

func serial() (*big.Int, error) { return rand.Int(rand.Reader, big.NewInt(1<<62)) }

func validity() (time.Time, time.Time) {
	now := time.Now()
	return now.Add(-time.Hour), now.Add(24 * time.Hour)
}

// NewCA makes a CA named cn.
func NewCA(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	nb, na := validity()
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: cn},
		NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, Pool: pool}, nil
}

// New is NewCA for a test: a failure fails t.
func New(t testing.TB, cn string) *CA {
	t.Helper()
	ca, err := NewCA(cn)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	return ca
}

// Issue makes a certificate for l signed by the CA.
func (ca *CA) Issue(l Leaf) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	nb, na := validity()
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: l.CN},
		DNSNames: l.DNSNames, IPAddresses: l.IPs, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: l.EKU}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %q: %w", l.CN, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Cert{TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, DER: der, Key: key, KeyDER: kder}, nil
}

// MustIssue is Issue for a test: a failure fails t.
func (ca *CA) MustIssue(t testing.TB, l Leaf) *Cert {
	t.Helper()
	c, err := ca.Issue(l)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	return c
}

// WriteCert writes the CA's certificate to path as PEM.
func (ca *CA) WriteCert(path string) error {
	return WritePEM(path, "CERTIFICATE", ca.Cert.Raw, 0o644)
}

// Write writes the certificate and its PKCS#8 key as PEM files; the key
// file is private (0600).
func (c *Cert) Write(certPath, keyPath string) error {
	if err := WritePEM(certPath, "CERTIFICATE", c.DER, 0o644); err != nil {
		return err
	}
	return WritePEM(keyPath, "PRIVATE KEY", c.KeyDER, 0o600)
}

// WritePEM writes one PEM block to path with the given mode.
func WritePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
