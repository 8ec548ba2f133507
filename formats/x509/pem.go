package x509

import (
	"crypto"
	stdx509 "crypto/x509"
	"encoding/pem"
	"fmt"
)

// EncodeCertificatePEM returns cert as a "CERTIFICATE" PEM block. cert must
// not be nil.
func EncodeCertificatePEM(cert *stdx509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// EncodeCSRPEM returns a DER PKCS#10 request, as made by CertificateRequest,
// as a "CERTIFICATE REQUEST" PEM block.
func EncodeCSRPEM(csrDER []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
}

// EncodePublicKeyPEM returns pub as a PKIX SubjectPublicKeyInfo in a
// "PUBLIC KEY" PEM block, the form read by "openssl pkey -pubin".
func EncodePublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := stdx509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("x509: encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
