package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/signet-project/signet/internal/fileperm"
)

// tlsConfigs builds the outer (to each bridge, by host name) and inner (to
// the server) TLS client configurations from c.
func (c *Config) tlsConfigs() (outer func(host string) *tls.Config, inner *tls.Config, err error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("%s holds no PEM certificate", c.CAFile)
	}
	if err := fileperm.CheckPrivate(c.KeyFile, "client key file"); err != nil {
		return nil, nil, err
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the client certificate: %w", err)
	}
	mk := func(host string, cache tls.ClientSessionCache) *tls.Config {
		return &tls.Config{
			// Resumed sessions skip the certificate signatures of a full
			// handshake: a client making many requests (a build system,
			// signet-robo) pays for them once per session lifetime. The
			// peer is still checked by VerifyConnection on resumption.
			ClientSessionCache: cache,
			Certificates:       []tls.Certificate{cert},
			ServerName:         host,
			MinVersion:         tls.VersionTLS12,
			// Go no longer falls back to the subject CN when it checks a
			// host name, but Sigul deployments use CN-only certificates
			// (PROTOCOL-v1 §1.2, §16.7): the chain and the name are
			// checked in VerifyConnection instead.
			InsecureSkipVerify: true,
			VerifyConnection:   verifyPeer(pool, host),
		}
	}
	// One cache for all bridges: it is keyed by server name.
	bridges := tls.NewLRUClientSessionCache(16)
	outer = func(host string) *tls.Config { return mk(host, bridges) }
	return outer, mk(c.ServerHost, tls.NewLRUClientSessionCache(16)), nil
}

// verifyPeer checks the peer's chain against roots and its name against
// host: SAN entries if the certificate has any, otherwise the subject CN.
func verifyPeer(roots *x509.CertPool, host string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the peer sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return err
		}
		if len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 || len(leaf.URIs) > 0 || len(leaf.EmailAddresses) > 0 {
			return leaf.VerifyHostname(host)
		}
		cn := leaf.Subject.CommonName
		if ip := net.ParseIP(host); ip != nil {
			if cip := net.ParseIP(cn); cip != nil && cip.Equal(ip) {
				return nil
			}
		} else if strings.EqualFold(strings.TrimSuffix(cn, "."), strings.TrimSuffix(host, ".")) {
			return nil
		}
		return fmt.Errorf("certificate is for %q, not %q", cn, host)
	}
}
