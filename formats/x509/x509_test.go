package x509

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseKind(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Kind
	}{
		{"ca", CA}, {"CA", CA}, {" codesigning ", CodeSigning}, {"code-signing", CodeSigning},
		{"sslserver", TLSServer}, {"tls-server", TLSServer}, {"TLS-Server", TLSServer},
	} {
		got, err := ParseKind(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "tls", "server", "code signing", "root"} {
		if k, err := ParseKind(bad); err == nil {
			t.Errorf("ParseKind(%q) = %v, want error", bad, k)
		}
	}
	for _, k := range []Kind{CA, CodeSigning, TLSServer} {
		if got, err := ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%v.String()) = %v, %v", k, got, err)
		}
	}
	if s := Kind(0).String(); s != "Kind(0)" {
		t.Errorf("Kind(0).String() = %q", s)
	}
}

// expectedSKID derives the RFC 5280 method 1 key identifier from the key
// itself, independently of any SubjectPublicKeyInfo encoding.
func expectedSKID(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	var bits []byte
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits = stdx509.MarshalPKCS1PublicKey(k)
	case *ecdsa.PublicKey:
		e, err := k.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		bits = e.Bytes()
	case ed25519.PublicKey:
		bits = k
	default:
		t.Fatalf("unexpected key type %T", pub)
	}
	sum := sha1.Sum(bits)
	return sum[:]
}

var osslHex = regexp.MustCompile(`(?i)[0-9a-f]{2}(:[0-9a-f]{2})+`)

// osslKeyID returns the key identifier that "openssl x509 -ext" prints for
// the named extension.
func osslKeyID(t *testing.T, dir, certPath, ext string) []byte {
	t.Helper()
	out := mustOpenSSL(t, dir, "x509", "-noout", "-in", certPath, "-ext", ext)
	m := osslHex.FindString(out)
	if m == "" {
		t.Fatalf("no key identifier in openssl output:\n%s", out)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(m, ":", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSelfSignedCA(t *testing.T) {
	requireOpenSSL(t)
	for _, kt := range keyTypes {
		t.Run(kt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newSigner(t, kt)
			before := time.Now()
			ca := mustCA(t, s, caRequest("Test Root "+kt.name, 1))
			checkSignOpts(t, kt, s)

			if !ca.BasicConstraintsValid || !ca.IsCA || ca.MaxPathLen != 1 {
				t.Errorf("basic constraints: valid=%v CA=%v pathlen=%d", ca.BasicConstraintsValid, ca.IsCA, ca.MaxPathLen)
			}
			wantKU := stdx509.KeyUsageCertSign | stdx509.KeyUsageCRLSign | stdx509.KeyUsageDigitalSignature
			if ca.KeyUsage != wantKU {
				t.Errorf("key usage %b, want %b", ca.KeyUsage, wantKU)
			}
			if len(ca.ExtKeyUsage) != 0 {
				t.Errorf("CA has EKU %v", ca.ExtKeyUsage)
			}
			crit := criticality(ca)
			if !crit[oidBasicConstraints] || !crit[oidKeyUsage] {
				t.Errorf("basicConstraints/keyUsage not critical: %v", crit)
			}
			if want := expectedSKID(t, s.Public()); !bytes.Equal(ca.SubjectKeyId, want) {
				t.Errorf("SKID %x, want SHA-1 of key bits %x", ca.SubjectKeyId, want)
			}
			if !bytes.Equal(ca.AuthorityKeyId, ca.SubjectKeyId) {
				t.Errorf("AKID %x != SKID %x", ca.AuthorityKeyId, ca.SubjectKeyId)
			}
			if ca.SignatureAlgorithm != kt.sigAlg {
				t.Errorf("signature algorithm %v, want %v", ca.SignatureAlgorithm, kt.sigAlg)
			}
			if ca.SerialNumber.Sign() <= 0 || ca.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %v not a positive 128-bit number", ca.SerialNumber)
			}
			if d := ca.NotBefore.Sub(before.Add(-time.Hour)); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("NotBefore %v, want about now-1h", ca.NotBefore)
			}
			if d := ca.NotAfter.Sub(before.Add(10 * 365 * 24 * time.Hour)); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("NotAfter %v, want about now+validity", ca.NotAfter)
			}

			p := writeCert(t, dir, "ca.pem", ca)
			mustOpenSSL(t, dir, "verify", "-CAfile", p, p)
			text := mustOpenSSL(t, dir, "x509", "-noout", "-text", "-in", p)
			for _, want := range []string{
				"Signature Algorithm: " + kt.osslSig,
				"X509v3 Basic Constraints: critical",
				"CA:TRUE, pathlen:1",
				"X509v3 Key Usage: critical",
				"Digital Signature, Certificate Sign, CRL Sign",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("openssl -text lacks %q:\n%s", want, text)
				}
			}
			// OpenSSL's "Public key OCSP hash" is the SHA-1 of the
			// subjectPublicKey BIT STRING, i.e. RFC 5280 method 1.
			ocsp := mustOpenSSL(t, dir, "x509", "-noout", "-ocspid", "-in", p)
			m := regexp.MustCompile(`Public key OCSP hash: *([0-9A-Fa-f]{40})`).FindStringSubmatch(ocsp)
			if m == nil {
				t.Fatalf("no public key hash in:\n%s", ocsp)
			}
			if !strings.EqualFold(m[1], hex.EncodeToString(ca.SubjectKeyId)) {
				t.Errorf("openssl public key hash %s != SKID %x", m[1], ca.SubjectKeyId)
			}
			if got := osslKeyID(t, dir, p, "subjectKeyIdentifier"); !bytes.Equal(got, ca.SubjectKeyId) {
				t.Errorf("openssl reads SKID %x, want %x", got, ca.SubjectKeyId)
			}
			if got := osslKeyID(t, dir, p, "authorityKeyIdentifier"); !bytes.Equal(got, ca.SubjectKeyId) {
				t.Errorf("openssl reads AKID %x, want %x", got, ca.SubjectKeyId)
			}
		})
	}
}

// TestIssueLeaves issues code-signing and TLS certificates for every key
// type from a CA of every key type and checks them with openssl.
func TestIssueLeaves(t *testing.T) {
	requireOpenSSL(t)
	leafKeys := map[string]*opaqueSigner{}
	for _, kt := range keyTypes {
		leafKeys[kt.name] = newSigner(t, kt)
	}
	for _, caKT := range keyTypes {
		caSigner := newSigner(t, caKT)
		ca := mustCA(t, caSigner, caRequest("Test CA "+caKT.name, 0))
		for _, leafKT := range keyTypes {
			leafPub := leafKeys[leafKT.name].Public()
			_, leafIsRSA := leafPub.(*rsa.PublicKey)
			t.Run(caKT.name+"/"+leafKT.name, func(t *testing.T) {
				dir := t.TempDir()
				caPath := writeCert(t, dir, "ca.pem", ca)

				cs := mustIssue(t, ca, caSigner, leafPub, Request{
					Kind:     CodeSigning,
					Subject:  pkix.Name{CommonName: "Secure Boot Signer", Organization: []string{"Signet Test"}},
					Validity: 365 * 24 * time.Hour,
				})
				tls := mustIssue(t, ca, caSigner, leafPub, Request{
					Kind:     TLSServer,
					Subject:  pkix.Name{CommonName: "www.example.org"},
					Validity: 90 * 24 * time.Hour,
					DNSNames: []string{"www.example.org", "*.cdn.example.org"},
				})
				checkSignOpts(t, caKT, caSigner)
				for _, c := range []*stdx509.Certificate{cs, tls} {
					if c.SignatureAlgorithm != caKT.sigAlg {
						t.Errorf("signature algorithm %v, want %v (from the CA key)", c.SignatureAlgorithm, caKT.sigAlg)
					}
					if !c.BasicConstraintsValid || c.IsCA {
						t.Errorf("basic constraints: valid=%v CA=%v, want CA:FALSE", c.BasicConstraintsValid, c.IsCA)
					}
					if !bytes.Equal(c.AuthorityKeyId, ca.SubjectKeyId) {
						t.Errorf("AKID %x, want CA SKID %x", c.AuthorityKeyId, ca.SubjectKeyId)
					}
					if want := expectedSKID(t, leafPub); !bytes.Equal(c.SubjectKeyId, want) {
						t.Errorf("SKID %x, want %x", c.SubjectKeyId, want)
					}
				}

				// Code signing.
				if cs.KeyUsage != stdx509.KeyUsageDigitalSignature {
					t.Errorf("code signing key usage %b", cs.KeyUsage)
				}
				if len(cs.ExtKeyUsage) != 1 || cs.ExtKeyUsage[0] != stdx509.ExtKeyUsageCodeSigning {
					t.Errorf("code signing EKU %v", cs.ExtKeyUsage)
				}
				// openssl's checks: every pair in the full run; with -short
				// each key type once as CA and as leaf (the pairs of one type).
				withOpenSSL := !testing.Short() || caKT.name == leafKT.name
				if withOpenSSL {
					csPath := writeCert(t, dir, "codesign.pem", cs)
					out := mustOpenSSL(t, dir, "verify", "-CAfile", caPath, csPath)
					if !strings.Contains(out, "codesign.pem: OK") {
						t.Errorf("openssl verify output: %s", out)
					}
					// OpenSSL 3.0 has no code-signing purpose; read the EKU.
					ext := mustOpenSSL(t, dir, "x509", "-noout", "-in", csPath, "-ext", "extendedKeyUsage,keyUsage,basicConstraints")
					for _, want := range []string{"Code Signing", "Digital Signature", "CA:FALSE"} {
						if !strings.Contains(ext, want) {
							t.Errorf("code signing extensions lack %q:\n%s", want, ext)
						}
					}
					for _, unwanted := range []string{"TLS Web Server", "Key Encipherment", "Certificate Sign"} {
						if strings.Contains(ext, unwanted) {
							t.Errorf("code signing extensions contain %q:\n%s", unwanted, ext)
						}
					}
					// The EKU restricts it: it is no TLS server certificate.
					mustFailOpenSSL(t, dir, "verify", "-purpose", "sslserver", "-CAfile", caPath, csPath)
				}

				// TLS server.
				wantKU := stdx509.KeyUsageDigitalSignature
				if leafIsRSA {
					wantKU |= stdx509.KeyUsageKeyEncipherment
				}
				if tls.KeyUsage != wantKU {
					t.Errorf("TLS key usage %b, want %b", tls.KeyUsage, wantKU)
				}
				if len(tls.ExtKeyUsage) != 1 || tls.ExtKeyUsage[0] != stdx509.ExtKeyUsageServerAuth {
					t.Errorf("TLS EKU %v", tls.ExtKeyUsage)
				}
				if withOpenSSL {
					tlsPath := writeCert(t, dir, "tls.pem", tls)
					mustOpenSSL(t, dir, "verify", "-CAfile", caPath, tlsPath)
					mustOpenSSL(t, dir, "verify", "-purpose", "sslserver", "-verify_hostname", "www.example.org", "-CAfile", caPath, tlsPath)
					mustOpenSSL(t, dir, "verify", "-purpose", "sslserver", "-verify_hostname", "img.cdn.example.org", "-CAfile", caPath, tlsPath)
					mustFailOpenSSL(t, dir, "verify", "-purpose", "sslserver", "-verify_hostname", "www.example.com", "-CAfile", caPath, tlsPath)
					ext := mustOpenSSL(t, dir, "x509", "-noout", "-in", tlsPath, "-ext", "extendedKeyUsage,keyUsage,subjectAltName")
					for _, want := range []string{"TLS Web Server Authentication", "Digital Signature", "DNS:www.example.org", "DNS:*.cdn.example.org"} {
						if !strings.Contains(ext, want) {
							t.Errorf("TLS extensions lack %q:\n%s", want, ext)
						}
					}
					if got := strings.Contains(ext, "Key Encipherment"); got != leafIsRSA {
						t.Errorf("TLS keyEncipherment present=%v, want %v:\n%s", got, leafIsRSA, ext)
					}
					if strings.Contains(ext, "Code Signing") {
						t.Errorf("TLS certificate has code signing EKU:\n%s", ext)
					}
				}

				// Go's verifier agrees.
				roots := stdx509.NewCertPool()
				roots.AddCert(ca)
				if _, err := tls.Verify(stdx509.VerifyOptions{Roots: roots, DNSName: "www.example.org"}); err != nil {
					t.Errorf("Go verify TLS: %v", err)
				}
				if _, err := cs.Verify(stdx509.VerifyOptions{Roots: roots, KeyUsages: []stdx509.ExtKeyUsage{stdx509.ExtKeyUsageCodeSigning}}); err != nil {
					t.Errorf("Go verify code signing: %v", err)
				}
			})
		}
	}
}

// TestIntermediateChain builds root -> intermediate -> leaf with different
// key types at each level.
func TestIntermediateChain(t *testing.T) {
	requireOpenSSL(t)
	for i, rootKT := range keyTypes {
		interKT := keyTypes[(i+1)%len(keyTypes)]
		leafKT := keyTypes[(i+2)%len(keyTypes)]
		t.Run(rootKT.name+"/"+interKT.name+"/"+leafKT.name, func(t *testing.T) {
			dir := t.TempDir()
			rootS, interS, leafS := newSigner(t, rootKT), newSigner(t, interKT), newSigner(t, leafKT)
			root := mustCA(t, rootS, caRequest("Test Root", 1))
			interReq := caRequest("Test Intermediate", 0)
			interReq.Validity = 5 * 365 * 24 * time.Hour
			inter := mustIssue(t, root, rootS, interS.Public(), interReq)
			leaf := mustIssue(t, inter, interS, leafS.Public(), Request{
				Kind:     CodeSigning,
				Subject:  pkix.Name{CommonName: "Kernel Signer"},
				Validity: 365 * 24 * time.Hour,
			})
			checkSignOpts(t, rootKT, rootS)
			checkSignOpts(t, interKT, interS)

			if !inter.IsCA || inter.MaxPathLen != 0 || !inter.MaxPathLenZero {
				t.Errorf("intermediate CA=%v pathlen=%d zero=%v", inter.IsCA, inter.MaxPathLen, inter.MaxPathLenZero)
			}
			if inter.KeyUsage != stdx509.KeyUsageCertSign|stdx509.KeyUsageCRLSign|stdx509.KeyUsageDigitalSignature {
				t.Errorf("intermediate key usage %b", inter.KeyUsage)
			}
			if !bytes.Equal(inter.AuthorityKeyId, root.SubjectKeyId) || !bytes.Equal(leaf.AuthorityKeyId, inter.SubjectKeyId) {
				t.Errorf("AKID chain broken")
			}
			if inter.SignatureAlgorithm != rootKT.sigAlg || leaf.SignatureAlgorithm != interKT.sigAlg {
				t.Errorf("signature algorithms %v, %v", inter.SignatureAlgorithm, leaf.SignatureAlgorithm)
			}

			rootP := writeCert(t, dir, "root.pem", root)
			interP := writeCert(t, dir, "inter.pem", inter)
			leafP := writeCert(t, dir, "leaf.pem", leaf)
			mustOpenSSL(t, dir, "verify", "-CAfile", rootP, interP)
			mustOpenSSL(t, dir, "verify", "-CAfile", rootP, "-untrusted", interP, leafP)
			mustOpenSSL(t, dir, "verify", "-x509_strict", "-CAfile", rootP, "-untrusted", interP, leafP)
			// Without the intermediate there is no path.
			mustFailOpenSSL(t, dir, "verify", "-CAfile", rootP, leafP)
			text := mustOpenSSL(t, dir, "x509", "-noout", "-in", interP, "-ext", "basicConstraints")
			if !strings.Contains(text, "critical") || !strings.Contains(text, "CA:TRUE, pathlen:0") {
				t.Errorf("intermediate basic constraints:\n%s", text)
			}

			// The intermediate has pathlen 0: no further CA below it.
			other := newSigner(t, leafKT)
			subReq := caRequest("Sub CA", 0)
			subReq.Validity = 24 * time.Hour
			if _, err := Issue(inter, interS, other.Public(), subReq); err == nil || !strings.Contains(err.Error(), "pathlen 0") {
				t.Errorf("issuing a CA below pathlen 0: err = %v", err)
			}
		})
	}
}

// TestOtherCAFails checks that openssl rejects a certificate against a CA
// that did not issue it, including a CA with the same name.
func TestOtherCAFails(t *testing.T) {
	requireOpenSSL(t)
	for _, kt := range keyTypes {
		t.Run(kt.name, func(t *testing.T) {
			dir := t.TempDir()
			sA, sB, sSame, leafS := newSigner(t, kt), newSigner(t, kt), newSigner(t, kt), newSigner(t, kt)
			caA := mustCA(t, sA, caRequest("CA A", 0))
			caB := mustCA(t, sB, caRequest("CA B", 0))
			caSame := mustCA(t, sSame, caRequest("CA A", 0)) // same name as A, other key
			leaf := mustIssue(t, caB, sB, leafS.Public(), Request{
				Kind: CodeSigning, Subject: pkix.Name{CommonName: "Leaf"}, Validity: time.Hour,
			})
			leafFromSame := mustIssue(t, caSame, sSame, leafS.Public(), Request{
				Kind: CodeSigning, Subject: pkix.Name{CommonName: "Leaf"}, Validity: time.Hour,
			})
			aP, bP := writeCert(t, dir, "a.pem", caA), writeCert(t, dir, "b.pem", caB)
			leafP := writeCert(t, dir, "leaf.pem", leaf)
			sameLeafP := writeCert(t, dir, "sameleaf.pem", leafFromSame)
			mustOpenSSL(t, dir, "verify", "-CAfile", bP, leafP) // control
			out := mustFailOpenSSL(t, dir, "verify", "-CAfile", aP, leafP)
			if !strings.Contains(out, "unable to get local issuer certificate") {
				t.Errorf("unexpected openssl failure:\n%s", out)
			}
			mustFailOpenSSL(t, dir, "verify", "-CAfile", aP, sameLeafP)
		})
	}
}

func TestCertificateRequest(t *testing.T) {
	requireOpenSSL(t)
	for _, kt := range keyTypes {
		t.Run(kt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newSigner(t, kt)
			subj := pkix.Name{CommonName: "build.example.org", Organization: []string{"Signet Test"}, Country: []string{"US"}}
			der, err := CertificateRequest(s, subj, []string{"build.example.org", "sign.example.org"})
			if err != nil {
				t.Fatal(err)
			}
			checkSignOpts(t, kt, s)
			csr, err := stdx509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			if csr.SignatureAlgorithm != kt.sigAlg || csr.Subject.CommonName != "build.example.org" || len(csr.DNSNames) != 2 {
				t.Errorf("CSR: alg %v subject %v DNS %v", csr.SignatureAlgorithm, csr.Subject, csr.DNSNames)
			}
			block, _ := pem.Decode(EncodeCSRPEM(der))
			if block == nil || block.Type != "CERTIFICATE REQUEST" || !bytes.Equal(block.Bytes, der) {
				t.Fatalf("EncodeCSRPEM does not round-trip")
			}
			p := writeFile(t, dir, "req.pem", EncodeCSRPEM(der))
			if ok, out := opensslReqVerify(t, dir, p); !ok {
				t.Errorf("openssl req -verify failed:\n%s", out)
			}
			text := mustOpenSSL(t, dir, "req", "-noout", "-text", "-in", p)
			for _, want := range []string{"CN = build.example.org", "DNS:build.example.org", "DNS:sign.example.org", "Signature Algorithm: " + kt.osslSig} {
				if !strings.Contains(text, want) {
					t.Errorf("CSR text lacks %q:\n%s", want, text)
				}
			}

			// A damaged signature must fail the same check.
			bad := bytes.Clone(der)
			bad[len(bad)-3] ^= 0x40
			badP := writeFile(t, dir, "bad.pem", EncodeCSRPEM(bad))
			if ok, out := opensslReqVerify(t, dir, badP); ok {
				t.Errorf("openssl req -verify accepted a damaged signature:\n%s", out)
			}
		})
	}
	s := newSigner(t, keyTypes[1])
	if _, err := CertificateRequest(s, pkix.Name{}, nil); err == nil {
		t.Error("CSR without subject or DNS name accepted")
	}
	if _, err := CertificateRequest(s, pkix.Name{CommonName: "x"}, []string{"bad name"}); err == nil {
		t.Error("CSR with bad DNS name accepted")
	}
	if s.calls() != 0 {
		t.Errorf("refused CSRs used the signer %d times", s.calls())
	}
}

func TestEncodePublicKeyPEM(t *testing.T) {
	requireOpenSSL(t)
	for _, kt := range keyTypes {
		t.Run(kt.name, func(t *testing.T) {
			dir := t.TempDir()
			pub := newSigner(t, kt).Public()
			pemBytes, err := EncodePublicKeyPEM(pub)
			if err != nil {
				t.Fatal(err)
			}
			block, rest := pem.Decode(pemBytes)
			if block == nil || block.Type != "PUBLIC KEY" || len(rest) != 0 {
				t.Fatalf("bad PEM:\n%s", pemBytes)
			}
			p := writeFile(t, dir, "pub.pem", pemBytes)
			out := writeFile(t, dir, "pub.der", nil)
			mustOpenSSL(t, dir, "pkey", "-pubin", "-in", p, "-outform", "DER", "-out", out)
			got, err := stdx509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !got.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
				t.Error("PEM does not hold the key")
			}
			osslDER := mustRead(t, out)
			if !bytes.Equal(osslDER, block.Bytes) {
				t.Error("openssl re-encodes the key differently")
			}
		})
	}
	if _, err := EncodePublicKeyPEM("not a key"); err == nil {
		t.Error("EncodePublicKeyPEM accepted a string")
	}
}

func TestEncodeCertificatePEM(t *testing.T) {
	s := newSigner(t, keyTypes[1])
	ca := mustCA(t, s, caRequest("PEM", 0))
	block, rest := pem.Decode(EncodeCertificatePEM(ca))
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 || !bytes.Equal(block.Bytes, ca.Raw) {
		t.Error("EncodeCertificatePEM does not round-trip")
	}
}

func TestValidityAndSerial(t *testing.T) {
	s := newSigner(t, keyTypes[1])
	nb := time.Date(2025, 1, 2, 3, 4, 5, 600, time.FixedZone("X", 3600))
	req := caRequest("Explicit", 0)
	req.NotBefore = nb
	req.Validity = 48 * time.Hour
	req.SerialNumber = big.NewInt(4242)
	ca := mustCA(t, s, req)
	if !ca.NotBefore.Equal(nb.Truncate(time.Second)) || !ca.NotAfter.Equal(nb.Add(48*time.Hour).Truncate(time.Second)) {
		t.Errorf("validity %v - %v", ca.NotBefore, ca.NotAfter)
	}
	if ca.SerialNumber.Cmp(big.NewInt(4242)) != 0 {
		t.Errorf("serial %v", ca.SerialNumber)
	}

	req = caRequest("Explicit NotAfter", 0)
	req.Validity = 0
	req.NotAfter = time.Now().Add(24 * time.Hour)
	ca2 := mustCA(t, s, req)
	if !ca2.NotAfter.Equal(req.NotAfter.Truncate(time.Second)) {
		t.Errorf("NotAfter %v, want %v", ca2.NotAfter, req.NotAfter)
	}
	if ca2.SerialNumber.Cmp(ca.SerialNumber) == 0 {
		t.Error("serial not random")
	}

	// Refused: a validity ending after the issuer's (not clamped).
	leafS := newSigner(t, keyTypes[1])
	_, err := Issue(ca2, s, leafS.Public(), Request{
		Kind: CodeSigning, Subject: pkix.Name{CommonName: "Long"}, NotAfter: ca2.NotAfter.Add(time.Second),
	})
	if err == nil || !strings.Contains(err.Error(), "after issuer's NotAfter") {
		t.Errorf("validity past issuer: err = %v", err)
	}
	// Ending exactly with the issuer is fine.
	if _, err := Issue(ca2, s, leafS.Public(), Request{
		Kind: CodeSigning, Subject: pkix.Name{CommonName: "Exact"}, NotAfter: ca2.NotAfter,
	}); err != nil {
		t.Errorf("validity ending with issuer: %v", err)
	}
}

// opensslReqVerify runs "openssl req -verify" on a CSR. OpenSSL before 3.3
// exits 0 even when the self-signature does not verify (openssl/openssl
// issue 23771), so the verdict is also read from the message.
func opensslReqVerify(t *testing.T, dir, path string) (bool, string) {
	t.Helper()
	out, exitOK := openssl(t, dir, "req", "-verify", "-noout", "-in", path)
	ok := exitOK && strings.Contains(out, "verify OK") && !strings.Contains(out, "verify failure")
	return ok, out
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// p224Signer and rsa1024Signer have keys the package refuses.
func p224Signer(t *testing.T) *opaqueSigner {
	k, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &opaqueSigner{inner: k}
}

func rsa1024Signer(t *testing.T) *opaqueSigner {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return &opaqueSigner{inner: k}
}

func TestPathLenUnlimited(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	rootS, subS := newSigner(t, keyTypes[2]), newSigner(t, keyTypes[3])
	root := mustCA(t, rootS, caRequest("Unlimited Root", -1))
	if root.MaxPathLen != -1 || root.MaxPathLenZero {
		t.Errorf("root pathlen %d zero=%v, want unlimited", root.MaxPathLen, root.MaxPathLenZero)
	}
	subReq := caRequest("Sub CA", 3)
	subReq.Validity = 24 * time.Hour
	sub := mustIssue(t, root, rootS, subS.Public(), subReq)
	if sub.MaxPathLen != 3 {
		t.Errorf("sub CA pathlen %d, want 3", sub.MaxPathLen)
	}
	out := mustOpenSSL(t, dir, "x509", "-noout", "-in", writeCert(t, dir, "root.pem", root), "-ext", "basicConstraints")
	if !strings.Contains(out, "CA:TRUE") || strings.Contains(out, "pathlen") {
		t.Errorf("root basic constraints:\n%s", out)
	}
}
