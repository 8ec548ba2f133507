package x509

import (
	"fmt"
	"strings"
)

// Kind is the purpose of a certificate. The zero value is not a valid Kind,
// so that a Request whose Kind was forgotten is refused instead of silently
// producing a CA certificate.
type Kind int

const (
	// CA is a certificate authority: the self-signed root of a chain or an
	// intermediate CA issued by another CA.
	CA Kind = iota + 1
	// CodeSigning is a leaf certificate for signing code, for example
	// Secure Boot binaries (EKU codeSigning).
	CodeSigning
	// TLSServer is a leaf certificate for a TLS server (EKU serverAuth). It
	// needs at least one DNS name.
	TLSServer
)

// String returns the Sigul name of the kind ("ca", "codesigning",
// "sslserver"), which ParseKind accepts back.
func (k Kind) String() string {
	switch k {
	case CA:
		return "ca"
	case CodeSigning:
		return "codesigning"
	case TLSServer:
		return "sslserver"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

func (k Kind) valid() bool { return k == CA || k == CodeSigning || k == TLSServer }

// ParseKind parses a certificate kind. It accepts Sigul's names "ca",
// "codesigning" and "sslserver", and the aliases "code-signing" and
// "tls-server", ignoring case and surrounding white space.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ca":
		return CA, nil
	case "codesigning", "code-signing":
		return CodeSigning, nil
	case "sslserver", "tls-server":
		return TLSServer, nil
	}
	return 0, fmt.Errorf("x509: unknown certificate kind %q (want ca, codesigning, code-signing, sslserver or tls-server)", s)
}
