// Package x509 builds X.509 certificates and PKCS#10 certificate requests
// for keys that live in a hardware token.
//
// It is meant for key ceremonies in which a distribution creates its
// Secure Boot or TLS certificate chain: a self-signed root CA, optional
// intermediate CAs, and code-signing or TLS server leaf certificates.
// Private keys are only ever reached through crypto.Signer; the package
// never asks for, or type-asserts to, a concrete private key type. Supported
// public keys are *rsa.PublicKey (2048 bits or more), *ecdsa.PublicKey on
// P-256, P-384 or P-521, and ed25519.PublicKey.
//
// The signature algorithm is chosen from the signing key:
//
//	RSA      sha256WithRSAEncryption (PKCS#1 v1.5, never PSS: UEFI firmware
//	         and sbverify only accept v1.5)
//	P-256    ecdsa-with-SHA256
//	P-384    ecdsa-with-SHA384
//	P-521    ecdsa-with-SHA512
//	Ed25519  Ed25519 (pure)
//
// Every certificate carries a SubjectKeyIdentifier computed with RFC 5280
// section 4.2.1.2 method 1 (SHA-1 of the subjectPublicKey BIT STRING) and an
// AuthorityKeyIdentifier equal to the issuer's SubjectKeyIdentifier. Go's own
// default since Go 1.25 is a truncated SHA-256, so the identifier is always
// computed here explicitly.
//
// The package is named x509 like the standard library's; import the latter
// under another name (this package uses stdx509).
package x509
