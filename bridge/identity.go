package bridge

import (
	"crypto/x509"
	"slices"
	"strings"
)

// Who may use which port (issue 11, finding 1).
//
// Both ports require a certificate that chains to the CA, and one CA issues
// the certificates of users, robots and signing servers alike. So the CA
// alone cannot tell a server from a client: on the server port the bridge
// also requires one of Config.ServerNames, and on the client port it
// refuses any certificate that carries one of them.
//
// Extended key usage cannot make that distinction. A server's certificate
// is a TLS client certificate on the outer connection (the server dials
// the bridge) and a TLS server certificate in the inner session, so it
// needs both usages or none; and the certificates Sigul's documented
// certutil recipe makes for clients and servers carry no EKU at all, which
// Go's verification (and the unmodified Sigul programs) accept for any
// use. What crypto/tls already enforces stays: a certificate with EKUs
// must list clientAuth to be accepted on either port.

// certNames returns the names a certificate can be known by: its subject
// CN and its DNS subject alternative names.
func certNames(c *x509.Certificate) []string {
	names := make([]string, 0, 1+len(c.DNSNames))
	if c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	return append(names, c.DNSNames...)
}

// matchServerName returns the first of c's names (CN, then DNS SANs) that
// is in names, compared without regard to case as DNS names are, or "".
func matchServerName(c *x509.Certificate, names []string) string {
	for _, n := range certNames(c) {
		if slices.ContainsFunc(names, func(s string) bool { return strings.EqualFold(s, n) }) {
			return n
		}
	}
	return ""
}
