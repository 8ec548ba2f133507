package authenticode

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of PKCS#7, PKCS#9 and Microsoft's Authenticode.
var (
	oidSignedData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidSpcIndirectData = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidNestedSignature = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1}
	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// digestOIDs names the digest algorithms a signature may use.
var digestOIDs = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
}{
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}, crypto.MD5},
	{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, crypto.SHA1},
	{oidSHA256, crypto.SHA256},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512},
}

var (
	tagContext0 = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagContext1 = cbasn1.Tag(1).ContextSpecific().Constructed()
	tagContext2 = cbasn1.Tag(2).ContextSpecific().Constructed()
)

// obsolete is the SpcLink file name that signtool and every other signer
// put in SpcPeImageData: "<<<Obsolete>>>" as a BMPString (UTF-16BE).
var obsolete = func() []byte {
	var b []byte
	for _, c := range "<<<Obsolete>>>" {
		b = append(b, 0, byte(c))
	}
	return b
}()

func addSHA256(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSHA256)
		b.AddASN1NULL()
	})
}

// indirectData is the DER of SpcIndirectDataContent for a PE image with
// the given SHA-256 Authenticode digest.
func indirectData(digest []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		// SpcAttributeTypeAndOptionalValue
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidSpcPEImageData)
			// SpcPeImageData: flags (an empty BIT STRING), file [0] SpcLink
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddUint8(0) })
				b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
					// SpcLink file [2] EXPLICIT SpcString unicode [0] IMPLICIT BMPString
					b.AddASN1(tagContext2, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddBytes(obsolete)
						})
					})
				})
			})
		})
		// DigestInfo
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addSHA256(b)
			b.AddASN1OctetString(digest)
		})
	})
	return b.Bytes()
}

func attribute(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.SET, value)
	})
	return b.Bytes()
}

// signedAttributes returns the DER contents (without tag and length) of
// the SET OF authenticated attributes, sorted as DER requires. They are
// the three that sbsign (OpenSSL) also signs, without Microsoft's optional
// SpcSpOpusInfo and SpcStatementType: sorted, they come out as contentType,
// signingTime, messageDigest, the one order in which go-uefi (and so
// sbctl), which re-encodes the attributes instead of hashing them as
// received, can verify a signature.
func signedAttributes(content []byte, t time.Time) ([]byte, error) {
	// messageDigest covers the content's value: SpcIndirectDataContent
	// without its own tag and length.
	s := cryptobyte.String(content)
	var inner cryptobyte.String
	if !s.ReadASN1(&inner, cbasn1.SEQUENCE) {
		return nil, errors.New("authenticode: internal error: bad SpcIndirectDataContent")
	}
	md := sha256.Sum256(inner)
	t = t.UTC().Truncate(time.Second)
	values := []struct {
		oid asn1.ObjectIdentifier
		add func(*cryptobyte.Builder)
	}{
		{oidContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidSpcIndirectData) }},
		{oidSigningTime, func(b *cryptobyte.Builder) {
			if t.Year() >= 1950 && t.Year() < 2050 {
				b.AddASN1UTCTime(t)
			} else {
				b.AddASN1GeneralizedTime(t)
			}
		}},
		{oidMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(md[:]) }},
	}
	var attrs [][]byte
	for _, v := range values {
		a, err := attribute(v.oid, v.add)
		if err != nil {
			return nil, fmt.Errorf("authenticode: encoding attribute %v: %w", v.oid, err)
		}
		attrs = append(attrs, a)
	}
	sort.Slice(attrs, func(i, j int) bool { return bytes.Compare(attrs[i], attrs[j]) < 0 })
	return bytes.Join(attrs, nil), nil
}

// signedData assembles the PKCS#7 ContentInfo of an Authenticode signature.
func signedData(content, attrs []byte, sigAlg asn1.ObjectIdentifier, sig []byte, signer *x509.Certificate, certs []*x509.Certificate) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, addSHA256)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidSpcIndirectData)
					b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { b.AddBytes(content) })
				})
				b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
					for _, c := range certs {
						b.AddBytes(c.Raw)
					}
				})
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerAndSerialNumber
							b.AddBytes(signer.RawIssuer)
							b.AddASN1BigInt(signer.SerialNumber)
						})
						addSHA256(b)
						b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { b.AddBytes(attrs) })
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(sigAlg)
							if sigAlg.Equal(oidRSAEncryption) {
								b.AddASN1NULL()
							}
						})
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	return b.Bytes()
}

// Signature is one Authenticode signature found in an image.
type Signature struct {
	// Certificates are those the signature carries (that Go could parse).
	Certificates []*x509.Certificate
	// Signer is the certificate among Certificates that the signer info
	// names, or nil if it is not there.
	Signer *x509.Certificate
	// DigestAlgorithm names the algorithm of the image digest that was
	// signed ("SHA-256", "SHA-1", ...), or gives its OID if unknown.
	DigestAlgorithm string
	// Digest is the image digest that was signed.
	Digest []byte
	// SigningTime is the signing time attribute, zero if there is none.
	SigningTime time.Time
	// Nested is true for a signature nested in another one's unsigned
	// attributes (how signtool and osslsigncode add a second signature)
	// rather than in an entry of its own in the certificate table.
	Nested bool
	// Raw is the DER PKCS#7 ContentInfo.
	Raw []byte
}

// maxNesting bounds how deep nested signatures are followed.
const maxNesting = 4

var errMalformed = errors.New("malformed PKCS#7 SignedData")

// parseSignatures parses the Authenticode ContentInfo at the start of der
// (trailing bytes, such as padding, are ignored) and the signatures nested
// in it.
func parseSignatures(der []byte, depth int) ([]Signature, error) {
	in := cryptobyte.String(der)
	var raw, ci, content, sd cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
		return nil, errMalformed
	}
	body := raw
	if !body.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&oid) {
		return nil, errMalformed
	}
	if !oid.Equal(oidSignedData) {
		return nil, fmt.Errorf("content type %v is not PKCS#7 SignedData", oid)
	}
	var version int64
	var digestAlgs, encap, eType, certs, signerInfos cryptobyte.String
	var hasCerts bool
	if !ci.ReadASN1(&content, tagContext0) ||
		!content.ReadASN1(&sd, cbasn1.SEQUENCE) ||
		!sd.ReadASN1Integer(&version) ||
		!sd.ReadASN1(&digestAlgs, cbasn1.SET) ||
		!sd.ReadASN1(&encap, cbasn1.SEQUENCE) ||
		!encap.ReadASN1ObjectIdentifier(&oid) ||
		!sd.ReadOptionalASN1(&certs, &hasCerts, tagContext0) ||
		!sd.SkipOptionalASN1(tagContext1) ||
		!sd.ReadASN1(&signerInfos, cbasn1.SET) {
		return nil, errMalformed
	}
	if !oid.Equal(oidSpcIndirectData) {
		return nil, fmt.Errorf("signed content type %v is not SpcIndirectDataContent", oid)
	}
	// SpcIndirectDataContent: data, then DigestInfo.
	var idc, digestInfo, digestAlg, digest cryptobyte.String
	var digestOID asn1.ObjectIdentifier
	if !encap.ReadASN1(&eType, tagContext0) ||
		!eType.ReadASN1(&idc, cbasn1.SEQUENCE) ||
		!idc.SkipASN1(cbasn1.SEQUENCE) ||
		!idc.ReadASN1(&digestInfo, cbasn1.SEQUENCE) ||
		!digestInfo.ReadASN1(&digestAlg, cbasn1.SEQUENCE) ||
		!digestAlg.ReadASN1ObjectIdentifier(&digestOID) ||
		!digestInfo.ReadASN1(&digest, cbasn1.OCTET_STRING) {
		return nil, fmt.Errorf("malformed SpcIndirectDataContent")
	}
	sig := Signature{
		DigestAlgorithm: digestOID.String(),
		Digest:          bytes.Clone(digest),
		Nested:          depth > 0,
		Raw:             bytes.Clone(raw),
	}
	for _, d := range digestOIDs {
		if d.oid.Equal(digestOID) {
			sig.DigestAlgorithm = d.hash.String()
		}
	}
	for !certs.Empty() {
		var c cryptobyte.String
		var tag cbasn1.Tag
		if !certs.ReadAnyASN1Element(&c, &tag) {
			return nil, errMalformed
		}
		if tag != cbasn1.SEQUENCE {
			continue // an attribute certificate or another choice
		}
		if cert, err := x509.ParseCertificate(c); err == nil {
			sig.Certificates = append(sig.Certificates, cert)
		}
	}

	// The one SignerInfo Authenticode allows.
	var si, sid, attrs, unsigned cryptobyte.String
	var hasAttrs, hasUnsigned bool
	if !signerInfos.ReadASN1(&si, cbasn1.SEQUENCE) ||
		!si.ReadASN1Integer(&version) ||
		!si.ReadAnyASN1Element(&sid, nil) ||
		!si.SkipASN1(cbasn1.SEQUENCE) ||
		!si.ReadOptionalASN1(&attrs, &hasAttrs, tagContext0) ||
		!si.SkipASN1(cbasn1.SEQUENCE) ||
		!si.SkipASN1(cbasn1.OCTET_STRING) ||
		!si.ReadOptionalASN1(&unsigned, &hasUnsigned, tagContext1) {
		return nil, fmt.Errorf("malformed SignerInfo")
	}
	sig.Signer = findSigner(sid, sig.Certificates)
	for !attrs.Empty() {
		var a, values cryptobyte.String
		if !attrs.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) || !a.ReadASN1(&values, cbasn1.SET) {
			return nil, fmt.Errorf("malformed signed attribute")
		}
		if oid.Equal(oidSigningTime) {
			var t time.Time
			switch {
			case values.PeekASN1Tag(cbasn1.UTCTime) && values.ReadASN1UTCTime(&t),
				values.PeekASN1Tag(cbasn1.GeneralizedTime) && values.ReadASN1GeneralizedTime(&t):
				sig.SigningTime = t
			}
		}
	}
	sigs := []Signature{sig}
	for hasUnsigned && !unsigned.Empty() {
		var a, values cryptobyte.String
		if !unsigned.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) || !a.ReadASN1(&values, cbasn1.SET) {
			return nil, fmt.Errorf("malformed unsigned attribute")
		}
		if !oid.Equal(oidNestedSignature) {
			continue // counter-signatures, timestamps
		}
		if depth+1 > maxNesting {
			return nil, fmt.Errorf("signatures nested more than %d deep", maxNesting)
		}
		for !values.Empty() {
			var v cryptobyte.String
			if !values.ReadASN1Element(&v, cbasn1.SEQUENCE) {
				return nil, fmt.Errorf("malformed nested signature")
			}
			nested, err := parseSignatures(v, depth+1)
			if err != nil {
				return nil, fmt.Errorf("nested signature: %w", err)
			}
			sigs = append(sigs, nested...)
		}
	}
	return sigs, nil
}

// findSigner returns the certificate that a SignerIdentifier names.
func findSigner(sid cryptobyte.String, certs []*x509.Certificate) *x509.Certificate {
	var issuer, ski cryptobyte.String
	serial := new(big.Int)
	switch {
	case sid.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias cryptobyte.String
		if !sid.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !ias.ReadASN1Integer(serial) {
			return nil
		}
		for _, c := range certs {
			if bytes.Equal(c.RawIssuer, issuer) && c.SerialNumber.Cmp(serial) == 0 {
				return c
			}
		}
	case sid.ReadASN1(&ski, cbasn1.Tag(0).ContextSpecific()):
		for _, c := range certs {
			if len(ski) > 0 && bytes.Equal(c.SubjectKeyId, ski) {
				return c
			}
		}
	}
	return nil
}
