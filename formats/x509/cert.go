package x509

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // RFC 5280 key identifier method 1; not used for signatures.
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// MinRSABits is the smallest RSA modulus accepted, for signing keys and for
// certified keys alike.
const MinRSABits = 2048

// Request describes a certificate to create.
//
// Validity: NotBefore defaults to one hour before now (to tolerate clock
// skew between the ceremony machine and verifiers). Set exactly one of
// NotAfter and Validity. With Validity, NotAfter is NotBefore+Validity when
// NotBefore was given, and now+Validity otherwise. Both times are truncated
// to whole seconds and stored in UTC; NotAfter must come after NotBefore.
type Request struct {
	// Kind is the purpose of the certificate; it must be set.
	Kind Kind
	// Subject is the subject name; see ParseSubject. It must not be empty
	// for CA and CodeSigning certificates, and must differ from the
	// issuer's subject for issued certificates.
	Subject pkix.Name
	// NotBefore is the start of validity; zero means now minus one hour.
	NotBefore time.Time
	// NotAfter is the end of validity; zero means computed from Validity.
	NotAfter time.Time
	// Validity is the lifetime, used when NotAfter is zero.
	Validity time.Duration
	// DNSNames are the subjectAltName DNS names. TLSServer certificates
	// need at least one; other kinds must have none. A name is letters,
	// digits, '-' and '_' in dot-separated labels, optionally with "*" as
	// the whole leftmost label followed by at least two labels. IP
	// addresses are refused.
	DNSNames []string
	// SerialNumber is the serial number; nil means a random positive
	// 128-bit number. A given serial must be positive and fit 20 octets.
	SerialNumber *big.Int
	// PathLen is the basicConstraints pathLenConstraint of a CA: the number
	// of intermediate CAs allowed below it. -1 means unlimited; the zero
	// value means the CA may issue only leaf certificates. Ignored for
	// other kinds.
	PathLen int
}

// SelfSignedCA creates a self-signed root CA certificate for signer's key.
// req.Kind must be CA. The certificate has basicConstraints CA:TRUE
// (critical, with req.PathLen), keyUsage keyCertSign, cRLSign and
// digitalSignature (critical), and equal subject and authority key
// identifiers.
func SelfSignedCA(signer crypto.Signer, req Request) (*stdx509.Certificate, error) {
	if req.Kind != CA {
		return nil, fmt.Errorf("x509: SelfSignedCA needs Kind ca, got %v", req.Kind)
	}
	pub, sigAlg, err := signerKey(signer)
	if err != nil {
		return nil, err
	}
	tmpl, err := template(req, pub, time.Now())
	if err != nil {
		return nil, err
	}
	tmpl.AuthorityKeyId = tmpl.SubjectKeyId
	tmpl.SignatureAlgorithm = sigAlg
	der, err := stdx509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("x509: creating CA certificate: %w", err)
	}
	cert, err := stdx509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("x509: parsing created certificate: %w", err)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("x509: created certificate does not verify: %w", err)
	}
	return cert, nil
}

// Issue creates a certificate for subjectPub signed by issuer, whose
// private key is reached through issuerSigner.
//
// By req.Kind:
//
//	CodeSigning  keyUsage digitalSignature, EKU codeSigning, CA:FALSE
//	TLSServer    keyUsage digitalSignature (plus keyEncipherment for an RSA
//	             subject key), EKU serverAuth, CA:FALSE, DNS names
//	CA           an intermediate CA, as in SelfSignedCA
//
// Issue refuses when issuer is not a CA or lacks keyCertSign; when
// issuerSigner's public key is not issuer's; when the validity would end
// after issuer's NotAfter (it is not clamped); when NotAfter is not after
// NotBefore; when the subject name equals the issuer's; when subjectPub is
// the issuer's own key; when issuer's path length constraint does not allow
// another CA; and when issuer's extended key usages exclude the requested
// one.
func Issue(issuer *stdx509.Certificate, issuerSigner crypto.Signer, subjectPub crypto.PublicKey, req Request) (*stdx509.Certificate, error) {
	if issuer == nil {
		return nil, errors.New("x509: no issuer certificate")
	}
	if !req.Kind.valid() {
		return nil, fmt.Errorf("x509: invalid certificate kind %v", req.Kind)
	}
	if !issuer.BasicConstraintsValid || !issuer.IsCA {
		return nil, fmt.Errorf("x509: issuer %q is not a CA certificate (basicConstraints CA:TRUE missing)", issuer.Subject)
	}
	if issuer.KeyUsage&stdx509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("x509: issuer %q lacks keyUsage keyCertSign", issuer.Subject)
	}
	issuerPub, sigAlg, err := signerKey(issuerSigner)
	if err != nil {
		return nil, fmt.Errorf("x509: issuer signer: %w", err)
	}
	if !publicKeysEqual(issuerPub, issuer.PublicKey) {
		return nil, fmt.Errorf("x509: issuer signer's public key does not match the public key of issuer certificate %q", issuer.Subject)
	}
	if err := checkPublicKey(subjectPub); err != nil {
		return nil, fmt.Errorf("x509: subject key: %w", err)
	}
	if publicKeysEqual(subjectPub, issuer.PublicKey) {
		return nil, errors.New("x509: subject key is the issuer's own key; use SelfSignedCA for a self-signed certificate")
	}

	tmpl, err := template(req, subjectPub, time.Now())
	if err != nil {
		return nil, err
	}
	subjectDER, err := asn1.Marshal(tmpl.Subject.ToRDNSequence())
	if err != nil {
		return nil, fmt.Errorf("x509: encoding subject: %w", err)
	}
	if bytes.Equal(subjectDER, issuer.RawSubject) {
		return nil, fmt.Errorf("x509: subject %q equals the issuer's subject; an issued certificate needs its own name", issuer.Subject)
	}
	switch req.Kind {
	case CA:
		if issuer.MaxPathLen == 0 {
			return nil, fmt.Errorf("x509: issuer %q has pathlen 0 and may not issue CA certificates", issuer.Subject)
		}
		if issuer.MaxPathLen > 0 && (req.PathLen < 0 || req.PathLen >= issuer.MaxPathLen) {
			return nil, fmt.Errorf("x509: issuer %q has pathlen %d, so the new CA needs PathLen between 0 and %d (got %d)",
				issuer.Subject, issuer.MaxPathLen, issuer.MaxPathLen-1, req.PathLen)
		}
	default:
		eku := tmpl.ExtKeyUsage[0]
		if !issuerAllowsEKU(issuer, eku) {
			return nil, fmt.Errorf("x509: issuer %q restricts extended key usage and does not allow %s", issuer.Subject, req.Kind)
		}
	}
	if tmpl.NotAfter.After(issuer.NotAfter) {
		return nil, fmt.Errorf("x509: requested NotAfter %s is after issuer's NotAfter %s; shorten the validity",
			tmpl.NotAfter.Format(time.RFC3339), issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	// Go takes the authority key identifier from the issuer's subject key
	// identifier; set it here too so that it holds even in corner cases.
	// An issuer without a subject key identifier yields no AKI.
	tmpl.AuthorityKeyId = issuer.SubjectKeyId
	tmpl.SignatureAlgorithm = sigAlg

	der, err := stdx509.CreateCertificate(rand.Reader, tmpl, issuer, subjectPub, issuerSigner)
	if err != nil {
		return nil, fmt.Errorf("x509: creating %s certificate: %w", req.Kind, err)
	}
	cert, err := stdx509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("x509: parsing created certificate: %w", err)
	}
	if err := cert.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("x509: created certificate does not verify against its issuer: %w", err)
	}
	return cert, nil
}

// CertificateRequest creates a DER-encoded PKCS#10 certificate request for
// signer's key, with the given subject and subjectAltName DNS names. The
// subject may be empty only if there is at least one DNS name.
func CertificateRequest(signer crypto.Signer, subject pkix.Name, dnsNames []string) ([]byte, error) {
	pub, sigAlg, err := signerKey(signer)
	if err != nil {
		return nil, err
	}
	if len(subject.ToRDNSequence()) == 0 && len(dnsNames) == 0 {
		return nil, errors.New("x509: certificate request needs a subject or a DNS name")
	}
	if err := checkDNSNames(dnsNames); err != nil {
		return nil, err
	}
	tmpl := &stdx509.CertificateRequest{
		Subject:            subject,
		DNSNames:           append([]string(nil), dnsNames...),
		SignatureAlgorithm: sigAlg,
	}
	der, err := stdx509.CreateCertificateRequest(rand.Reader, tmpl, signer)
	if err != nil {
		return nil, fmt.Errorf("x509: creating certificate request: %w", err)
	}
	csr, err := stdx509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("x509: parsing created certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("x509: created certificate request does not verify: %w", err)
	}
	if !publicKeysEqual(csr.PublicKey, pub) {
		return nil, errors.New("x509: created certificate request carries the wrong public key")
	}
	return der, nil
}

// template validates req and turns it into a certificate template for pub,
// without signature algorithm or authority key identifier.
func template(req Request, pub crypto.PublicKey, now time.Time) (*stdx509.Certificate, error) {
	if !req.Kind.valid() {
		return nil, fmt.Errorf("x509: invalid certificate kind %v", req.Kind)
	}
	notBefore, notAfter, err := validity(req, now)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber(req.SerialNumber)
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	emptySubject := len(req.Subject.ToRDNSequence()) == 0
	tmpl := &stdx509.Certificate{
		SerialNumber:          serial,
		Subject:               req.Subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		SubjectKeyId:          skid,
		BasicConstraintsValid: true,
	}
	switch req.Kind {
	case CA:
		if emptySubject {
			return nil, errors.New("x509: a CA certificate needs a subject name")
		}
		if len(req.DNSNames) > 0 {
			return nil, errors.New("x509: DNS names are only allowed in TLS server certificates")
		}
		if req.PathLen < -1 {
			return nil, fmt.Errorf("x509: invalid PathLen %d (want -1 for unlimited, or 0 or more)", req.PathLen)
		}
		tmpl.IsCA = true
		tmpl.KeyUsage = stdx509.KeyUsageCertSign | stdx509.KeyUsageCRLSign | stdx509.KeyUsageDigitalSignature
		tmpl.MaxPathLen = req.PathLen
		tmpl.MaxPathLenZero = req.PathLen == 0
	case CodeSigning:
		if emptySubject {
			return nil, errors.New("x509: a code-signing certificate needs a subject name")
		}
		if len(req.DNSNames) > 0 {
			return nil, errors.New("x509: DNS names are only allowed in TLS server certificates")
		}
		tmpl.KeyUsage = stdx509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []stdx509.ExtKeyUsage{stdx509.ExtKeyUsageCodeSigning}
	case TLSServer:
		if len(req.DNSNames) == 0 {
			return nil, errors.New("x509: a TLS server certificate needs at least one DNS name")
		}
		if err := checkDNSNames(req.DNSNames); err != nil {
			return nil, err
		}
		tmpl.KeyUsage = stdx509.KeyUsageDigitalSignature
		if _, ok := pub.(*rsa.PublicKey); ok {
			tmpl.KeyUsage |= stdx509.KeyUsageKeyEncipherment
		}
		tmpl.ExtKeyUsage = []stdx509.ExtKeyUsage{stdx509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = append([]string(nil), req.DNSNames...)
	}
	return tmpl, nil
}

func validity(req Request, now time.Time) (notBefore, notAfter time.Time, err error) {
	notBefore = req.NotBefore
	if notBefore.IsZero() {
		notBefore = now.Add(-time.Hour)
	}
	switch {
	case !req.NotAfter.IsZero() && req.Validity != 0:
		return notBefore, notAfter, errors.New("x509: set either NotAfter or Validity, not both")
	case !req.NotAfter.IsZero():
		notAfter = req.NotAfter
	case req.Validity < 0:
		return notBefore, notAfter, fmt.Errorf("x509: negative Validity %v", req.Validity)
	case req.Validity > 0:
		if req.NotBefore.IsZero() {
			notAfter = now.Add(req.Validity)
		} else {
			notAfter = req.NotBefore.Add(req.Validity)
		}
	default:
		return notBefore, notAfter, errors.New("x509: no validity period: set Validity or NotAfter")
	}
	notBefore = notBefore.UTC().Truncate(time.Second)
	notAfter = notAfter.UTC().Truncate(time.Second)
	if !notAfter.After(notBefore) {
		return notBefore, notAfter, fmt.Errorf("x509: NotAfter %s is not after NotBefore %s",
			notAfter.Format(time.RFC3339), notBefore.Format(time.RFC3339))
	}
	return notBefore, notAfter, nil
}

func serialNumber(given *big.Int) (*big.Int, error) {
	if given != nil {
		if given.Sign() <= 0 {
			return nil, fmt.Errorf("x509: serial number %v is not positive", given)
		}
		// 20 octets of DER INTEGER content, with room for the sign bit.
		if given.BitLen() > 159 {
			return nil, errors.New("x509: serial number longer than 20 octets")
		}
		return new(big.Int).Set(given), nil
	}
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("x509: generating serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID returns the SHA-1 hash of the subjectPublicKey BIT STRING
// value (RFC 5280, section 4.2.1.2, method 1).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := stdx509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("x509: encoding public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &spki); err != nil || len(rest) != 0 {
		return nil, errors.New("x509: cannot decode encoded public key")
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

// signerKey checks signer's public key and returns it with the signature
// algorithm to use for it.
func signerKey(signer crypto.Signer) (crypto.PublicKey, stdx509.SignatureAlgorithm, error) {
	if signer == nil {
		return nil, 0, errors.New("x509: no signer")
	}
	pub := signer.Public()
	if err := checkPublicKey(pub); err != nil {
		return nil, 0, fmt.Errorf("x509: signer key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return pub, stdx509.SHA256WithRSA, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return pub, stdx509.ECDSAWithSHA256, nil
		case elliptic.P384():
			return pub, stdx509.ECDSAWithSHA384, nil
		case elliptic.P521():
			return pub, stdx509.ECDSAWithSHA512, nil
		}
	case ed25519.PublicKey:
		return pub, stdx509.PureEd25519, nil
	}
	return nil, 0, fmt.Errorf("x509: unsupported signer key type %T", pub)
}

func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return errors.New("empty RSA public key")
		}
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key of %d bits is too small (minimum %d)", k.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return errors.New("empty ECDSA public key")
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("unsupported ECDSA curve %s (want P-256, P-384 or P-521)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 public key of %d bytes (want %d)", len(k), ed25519.PublicKeySize)
		}
	case nil:
		return errors.New("no public key")
	default:
		return fmt.Errorf("unsupported public key type %T (want RSA, ECDSA or Ed25519)", pub)
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && b != nil && ea.Equal(b)
}

func issuerAllowsEKU(issuer *stdx509.Certificate, eku stdx509.ExtKeyUsage) bool {
	if len(issuer.ExtKeyUsage) == 0 && len(issuer.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range issuer.ExtKeyUsage {
		if u == stdx509.ExtKeyUsageAny || u == eku {
			return true
		}
	}
	return false
}

func checkDNSNames(names []string) error {
	for _, n := range names {
		if err := checkDNSName(n); err != nil {
			return fmt.Errorf("x509: bad DNS name %q: %w", n, err)
		}
	}
	return nil
}

func checkDNSName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > 253 {
		return errors.New("longer than 253 characters")
	}
	if net.ParseIP(name) != nil {
		return errors.New("an IP address, not a DNS name")
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if l == "*" {
			if i != 0 {
				return errors.New("wildcard is allowed only as the whole leftmost label")
			}
			if len(labels) < 3 {
				return errors.New("wildcard needs at least two labels after it")
			}
			continue
		}
		if l == "" {
			return errors.New("empty label")
		}
		if len(l) > 63 {
			return errors.New("label longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("label starts or ends with '-'")
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return nil
}
