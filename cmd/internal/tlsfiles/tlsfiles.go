// Package tlsfiles loads the PEM files of a [tls] configuration table,
// which signet-server and signet-bridge share.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/signet-project/signet/internal/fileperm"
)

// Load reads a certificate chain and its key, and a CA bundle. It refuses
// a missing setting and a CA file without a certificate.
func Load(certFile, keyFile, caFile string) (tls.Certificate, *x509.CertPool, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return tls.Certificate{}, nil, errors.New("configuration [tls] needs cert, key and ca")
	}
	if err := fileperm.CheckPrivate(keyFile, "TLS key file"); err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("loading %s and %s: %w", certFile, keyFile, err)
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return tls.Certificate{}, nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return cert, pool, nil
}
