package authenticode

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SignOptions says how Sign signs.
type SignOptions struct {
	// Certificate is the signer's certificate; its public key must be the
	// signer's.
	Certificate *x509.Certificate
	// Chain holds further certificates to embed (intermediates, the CA).
	Chain []*x509.Certificate
	// Replace drops the image's existing signatures instead of adding the
	// new one after them.
	Replace bool
	// Time is the signing time attribute; zero means now.
	Time time.Time
}

// certEntry is one WIN_CERTIFICATE in the certificate table.
type certEntry struct {
	off, length int64 // length includes the 8-byte header, not the padding
	revision    uint16
	typ         uint16
}

// maxEntrySize bounds the WIN_CERTIFICATE entries that Signatures reads
// into memory; real ones are a few kilobytes.
const maxEntrySize = 16 << 20

// entries walks the existing certificate table.
func (img *Image) entries() ([]certEntry, error) {
	var es []certEntry
	end := img.certOff + img.certSize
	var h [certEntryHeader]byte
	for off := img.certOff; end-off >= certEntryHeader; {
		if err := readFull(img.r, h[:], off); err != nil {
			return nil, err
		}
		e := certEntry{
			off:      off,
			length:   int64(binary.LittleEndian.Uint32(h[0:])),
			revision: binary.LittleEndian.Uint16(h[4:]),
			typ:      binary.LittleEndian.Uint16(h[6:]),
		}
		if e.length < certEntryHeader || e.length > end-off {
			return nil, notPE("malformed certificate table: the entry at %#x claims %d bytes, and %d are left in the table", off, e.length, end-off)
		}
		es = append(es, e)
		off += align8(e.length)
	}
	return es, nil
}

// Signatures returns the Authenticode signatures of the image: one for each
// PKCS#7 entry of its certificate table (other entry types are skipped),
// followed by the signatures nested inside that entry, if any.
func (img *Image) Signatures() ([]Signature, error) {
	if img.certSize == 0 {
		return nil, nil
	}
	es, err := img.entries()
	if err != nil {
		return nil, err
	}
	var sigs []Signature
	for i, e := range es {
		if e.typ != certTypePKCS {
			continue
		}
		if e.length > maxEntrySize {
			return nil, fmt.Errorf("authenticode: certificate table entry %d is %d bytes, more than the %d this reads", i, e.length, maxEntrySize)
		}
		der := make([]byte, e.length-certEntryHeader)
		if err := readFull(img.r, der, e.off+certEntryHeader); err != nil {
			return nil, err
		}
		s, err := parseSignatures(der, 0)
		if err != nil {
			return nil, fmt.Errorf("authenticode: certificate table entry %d (at %#x): %w", i, e.off, err)
		}
		sigs = append(sigs, s...)
	}
	return sigs, nil
}

// Sign writes to w the image signed with signer: the image, its headers
// patched (CheckSum and the certificate table entry), zero padding to a
// multiple of 8 bytes, and a certificate table holding the existing
// signatures (unless opts.Replace) and then a new WIN_CERTIFICATE entry
// with a PKCS#7 SignedData over the Authenticode digest. Several entries,
// one per signature, are how shim and sbsign sign an image more than once.
//
// The signer may be RSA (PKCS#1 v1.5) or ECDSA P-256, with SHA-256; its Sign
// is called exactly once and its result checked against the certificate.
// The image is read twice from its io.ReaderAt: once for the digest and
// the checksum, once to write; an image that reads differently the second
// time is an error. Sign returns the digest it signed. On error, whatever
// was written to w must be discarded.
func Sign(w io.Writer, img *Image, signer crypto.Signer, opts SignOptions) (digest []byte, err error) {
	sigAlg, err := checkSigner(signer, opts.Certificate)
	if err != nil {
		return nil, err
	}
	appendTo := img.certSize > 0 && !opts.Replace
	if appendTo {
		if img.certOff%8 != 0 {
			return nil, notPE("the existing certificate table at %#x is not 8-byte aligned, so no signature can be added after it: sign with Replace to drop it", img.certOff)
		}
		es, err := img.entries()
		if err != nil {
			return nil, fmt.Errorf("%w: sign with Replace to drop the existing signatures", err)
		}
		end := img.certOff
		if len(es) > 0 {
			end = es[len(es)-1].off + align8(es[len(es)-1].length)
		}
		if stray := img.certOff + img.certSize - end; stray > 0 {
			return nil, notPE("malformed certificate table: %d stray bytes after its last entry, where the new entry would go: sign with Replace to drop the existing signatures", stray)
		}
	}

	// Pass 1: the digest and the checksum of the data before the table.
	buf := make([]byte, chunkSize)
	digest, sum, err := img.scan(buf, true)
	if err != nil {
		return nil, err
	}
	var oldTableSum uint64
	oldTable := int64(0)
	if appendTo {
		oldTable = align8(img.certSize)
		if oldTableSum, err = img.sumRange(buf, img.certOff, img.certSize, img.paddedEnd); err != nil {
			return nil, err
		}
	}

	der, err := signDigest(digest, signer, sigAlg, opts)
	if err != nil {
		return nil, err
	}

	// The new entry and where everything goes.
	entry := make([]byte, align8(int64(certEntryHeader+len(der))))
	binary.LittleEndian.PutUint32(entry[0:], uint32(certEntryHeader+len(der)))
	binary.LittleEndian.PutUint16(entry[4:], certRevision2)
	binary.LittleEndian.PutUint16(entry[6:], certTypePKCS)
	copy(entry[certEntryHeader:], der)
	tableSize := oldTable + int64(len(entry))
	outSize := img.paddedEnd + tableSize
	if outSize > maxImageSize {
		return nil, fmt.Errorf("authenticode: the signed image would be %d bytes, more than a PE image can be", outSize)
	}
	var dirEntry [8]byte
	binary.LittleEndian.PutUint32(dirEntry[0:], uint32(img.paddedEnd))
	binary.LittleEndian.PutUint32(dirEntry[4:], uint32(tableSize))
	total := sum + peSum(img.certDirOff, dirEntry[:]) + oldTableSum + peSum(img.paddedEnd+oldTable, entry)
	var checksum [4]byte
	binary.LittleEndian.PutUint32(checksum[:], peChecksum(total, outSize))

	// Pass 2: write, and check that the image read the same as in pass 1.
	var sum2 uint64
	for off := int64(0); off < img.paddedEnd; {
		chunk := buf[:min(int64(len(buf)), img.paddedEnd-off)]
		if err := img.readPadded(chunk, off); err != nil {
			return nil, err
		}
		img.zeroFields(chunk, off)
		sum2 += peSum(off, chunk)
		patch(chunk, off, img.checksumOff, checksum[:])
		patch(chunk, off, img.certDirOff, dirEntry[:])
		if _, err := w.Write(chunk); err != nil {
			return nil, fmt.Errorf("authenticode: writing the signed image: %w", err)
		}
		off += int64(len(chunk))
	}
	if appendTo {
		var zeros [8]byte
		for off := img.certOff; off < img.certOff+img.certSize; {
			chunk := buf[:min(int64(len(buf)), img.certOff+img.certSize-off)]
			if err := readFull(img.r, chunk, off); err != nil {
				return nil, err
			}
			sum2 += peSum(img.paddedEnd+off-img.certOff, chunk)
			if _, err := w.Write(chunk); err != nil {
				return nil, fmt.Errorf("authenticode: writing the signed image: %w", err)
			}
			off += int64(len(chunk))
		}
		if _, err := w.Write(zeros[:oldTable-img.certSize]); err != nil {
			return nil, fmt.Errorf("authenticode: writing the signed image: %w", err)
		}
	}
	if sum2 != sum+oldTableSum {
		return nil, errors.New("authenticode: the image changed while it was being signed")
	}
	if _, err := w.Write(entry); err != nil {
		return nil, fmt.Errorf("authenticode: writing the signed image: %w", err)
	}
	return digest, nil
}

// sumRange is peSum over n bytes of the file at off, as if they sat at at.
func (img *Image) sumRange(buf []byte, off, n, at int64) (uint64, error) {
	var s uint64
	for end := off + n; off < end; {
		chunk := buf[:min(int64(len(buf)), end-off)]
		if err := readFull(img.r, chunk, off); err != nil {
			return 0, err
		}
		s += peSum(at, chunk)
		off += int64(len(chunk))
		at += int64(len(chunk))
	}
	return s, nil
}

// checkSigner checks that the signer is a kind Authenticode verifiers take
// and that it matches the certificate; it returns the signature algorithm
// OID for the SignerInfo.
func checkSigner(signer crypto.Signer, cert *x509.Certificate) (asn1.ObjectIdentifier, error) {
	if signer == nil {
		return nil, errors.New("authenticode: no signer")
	}
	if cert == nil {
		return nil, errors.New("authenticode: no signer certificate")
	}
	pub := signer.Public()
	var alg asn1.ObjectIdentifier
	switch k := pub.(type) {
	case *rsa.PublicKey:
		alg = oidRSAEncryption
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("authenticode: ECDSA keys on %s are not supported: use P-256 or RSA", k.Curve.Params().Name)
		}
		alg = oidECDSAWithSHA256
	case ed25519.PublicKey:
		return nil, errors.New("authenticode: Ed25519 keys are not supported: Authenticode signers are RSA or ECDSA P-256")
	default:
		return nil, fmt.Errorf("authenticode: %T keys are not supported: Authenticode signers are RSA or ECDSA P-256", pub)
	}
	if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("authenticode: the signer's public key does not match the certificate %q", cert.Subject.String())
	}
	return alg, nil
}

// signDigest builds the PKCS#7 SignedData over an image digest, calling the
// signer once.
func signDigest(digest []byte, signer crypto.Signer, sigAlg asn1.ObjectIdentifier, opts SignOptions) ([]byte, error) {
	content, err := indirectData(digest)
	if err != nil {
		return nil, fmt.Errorf("authenticode: encoding SpcIndirectDataContent: %w", err)
	}
	t := opts.Time
	if t.IsZero() {
		t = time.Now()
	}
	attrs, err := signedAttributes(content, t)
	if err != nil {
		return nil, err
	}
	// The signature covers the attributes DER-encoded as a SET OF.
	var set cryptobyte.Builder
	set.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(attrs) })
	setDER, err := set.Bytes()
	if err != nil {
		return nil, fmt.Errorf("authenticode: encoding signed attributes: %w", err)
	}
	sum := sha256.Sum256(setDER)
	hashed := sum[:]
	sig, err := signer.Sign(rand.Reader, hashed, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("authenticode: signing: %w", err)
	}
	switch k := opts.Certificate.PublicKey.(type) {
	case *rsa.PublicKey:
		err = rsa.VerifyPKCS1v15(k, crypto.SHA256, hashed, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, hashed, sig) {
			err = errors.New("ECDSA verification failed")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("authenticode: the signer returned a signature that the certificate's key does not verify: %w", err)
	}
	certs := []*x509.Certificate{opts.Certificate}
	for _, c := range opts.Chain {
		dup := c == nil
		for _, d := range certs {
			dup = dup || d.Equal(c)
		}
		if !dup {
			certs = append(certs, c)
		}
	}
	der, err := signedData(content, attrs, sigAlg, sig, opts.Certificate, certs)
	if err != nil {
		return nil, fmt.Errorf("authenticode: encoding SignedData: %w", err)
	}
	return der, nil
}
