package openpgp

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
	"unicode/utf8"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// Signature packets are built here by hand for every algorithm rather than
// with go-crypto's packet.Signature: go-crypto cannot sign EdDSA with a
// crypto.Signer, and one builder for all key types keeps the subpackets
// identical everywhere (no salt notation, issuer key id never critical, as
// rpm 4.18 wants) and leaves the signer only a digest to sign.

// SignatureType is the OpenPGP signature type of a document signature.
type SignatureType byte

// Document signature types (RFC 4880 section 5.2.1).
const (
	// BinarySignature signs the bytes as they are (type 0x00); RPM header
	// signatures are of this type.
	BinarySignature SignatureType = 0x00
	// TextSignature signs canonical text (type 0x01): as gpg 2.2 does
	// for detached text signatures, each line loses its trailing CRs and
	// its LF is hashed as CRLF, while trailing spaces and tabs and the
	// final line ending are signed. ClearSign, which also makes type 0x01
	// signatures, canonicalises differently: see there.
	TextSignature SignatureType = 0x01
)

const sigPositiveCert = 0x13

// Signature subpacket types (RFC 4880 section 5.2.3.1, RFC 9580 for 33).
const (
	subCreationTime  = 2
	subKeyExpiry     = 9
	subPrefSymmetric = 11
	subIssuerKeyID   = 16
	subPrefHash      = 21
	subKeyFlags      = 27
	subFeatures      = 30
	subIssuerFP      = 33
)

// Key flags (RFC 4880 section 5.2.3.21).
const (
	keyFlagCertify        = 0x01
	keyFlagSign           = 0x02
	keyFlagEncryptComms   = 0x04
	keyFlagEncryptStorage = 0x08
)

// hashIDs maps the hashes this package signs with to OpenPGP hash ids.
var hashIDs = map[crypto.Hash]byte{crypto.SHA256: 8, crypto.SHA384: 9, crypto.SHA512: 10}

// Certificate returns a binary transferable public key: the public key
// packet and, for each user id, a user id packet with a positive
// certification (0x13) self-signature made at sigTime (now if zero) with
// key flags certify+sign (and, for RSA keys only, encrypt communications
// and storage, so that messages can be encrypted to the key for Decrypt) and
// SHA-256/SHA-512/SHA-384 as preferred hashes.
// It refuses an empty list, an empty or non-UTF-8 user id, and a sigTime
// before the key's creation time.
func (k *Key) Certificate(userIDs []string, sigTime time.Time) ([]byte, error) {
	return k.CertificateExpiring(userIDs, sigTime, time.Time{})
}

// CertificateExpiring is Certificate with a key expiration time in every
// self-signature (zero: the key never expires). It refuses an expiration
// time that is not after the key's creation time.
func (k *Key) CertificateExpiring(userIDs []string, sigTime, expires time.Time) ([]byte, error) {
	if len(userIDs) == 0 {
		return nil, errors.New("openpgp: Certificate: no user id (gpg and rpm need one)")
	}
	if sigTime.IsZero() {
		sigTime = time.Now() // one time for all user ids
	}
	out := appendPacket(nil, 6, k.body)
	flags := byte(keyFlagCertify | keyFlagSign)
	if k.algo == algoRSA { // ECDSA and EdDSA keys cannot encrypt
		flags |= keyFlagEncryptComms | keyFlagEncryptStorage
	}
	extra := appendSubpacket(nil, subKeyFlags, []byte{flags})
	if k.algo == algoRSA {
		// Without a cipher preference, gpg encrypts to the key with
		// 3DES; ask for AES-256, AES-192, AES-128, and say the key
		// holder reads integrity-protected (MDC) data.
		extra = appendSubpacket(extra, subPrefSymmetric, []byte{9, 8, 7})
		extra = appendSubpacket(extra, subFeatures, []byte{0x01})
	}
	extra = appendSubpacket(extra, subPrefHash, []byte{8, 10, 9})
	if !expires.IsZero() {
		d := expires.Unix() - k.created.Unix()
		if d <= 0 || d > 1<<32-1 {
			return nil, fmt.Errorf("openpgp: key expiration %s must be after the key's creation %s and within 136 years of it",
				expires.UTC().Format(time.RFC3339), k.created.Format(time.RFC3339))
		}
		extra = appendSubpacket(extra, subKeyExpiry, binary.BigEndian.AppendUint32(nil, uint32(d)))
	}
	for _, uid := range userIDs {
		if uid == "" || !utf8.ValidString(uid) || len(uid) > 1<<16 {
			return nil, fmt.Errorf("openpgp: Certificate: invalid user id %q (empty, too long or not UTF-8)", uid)
		}
		sig, err := k.signature(sigPositiveCert, k.hash, sigTime, extra, func(w io.Writer) error {
			var hdr [7]byte
			hdr[0] = 0x99
			binary.BigEndian.PutUint16(hdr[1:], uint16(len(k.body)))
			w.Write(hdr[:3])
			w.Write(k.body)
			hdr[0] = 0xb4
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(uid)))
			w.Write(hdr[:5])
			_, err := io.WriteString(w, uid)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("openpgp: certifying user id %q: %w", uid, err)
		}
		out = appendPacket(out, 13, []byte(uid))
		out = append(out, sig...)
	}
	return out, nil
}

// ArmoredCertificate is Certificate in ASCII armor ("PGP PUBLIC KEY BLOCK"),
// the form gpg --import and rpmkeys --import read.
func (k *Key) ArmoredCertificate(userIDs []string, sigTime time.Time) ([]byte, error) {
	cert, err := k.Certificate(userIDs, sigTime)
	if err != nil {
		return nil, err
	}
	return Armor(cert, "PGP PUBLIC KEY BLOCK")
}

// Armor encodes data in OpenPGP ASCII armor with the given block type (such
// as "PGP PUBLIC KEY BLOCK" or "PGP SIGNATURE"), with the CRC-24 checksum
// line that rpm 4.18 requires. It refuses an empty block type.
func Armor(data []byte, blockType string) ([]byte, error) {
	if blockType == "" {
		return nil, errors.New("openpgp: Armor: empty block type")
	}
	var buf bytes.Buffer
	w, err := armor.EncodeWithChecksumOption(&buf, blockType, nil, true)
	if err != nil {
		return nil, fmt.Errorf("openpgp: armoring %s: %w", blockType, err)
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("openpgp: armoring %s: %w", blockType, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("openpgp: armoring %s: %w", blockType, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// SignDetached returns a binary detached signature packet over everything
// read from r, of type canonical text (0x01) if text is set and binary
// (0x00) otherwise, made at sigTime (now if zero) with Key.Hash. The input
// is streamed. It refuses a sigTime before the key's creation time.
func (k *Key) SignDetached(r io.Reader, text bool, sigTime time.Time) ([]byte, error) {
	t := BinarySignature
	if text {
		t = TextSignature
	}
	return k.SignReader(r, t, k.hash, sigTime)
}

// SignReader returns a detached v4 signature packet (not armored) of type
// typ over everything read from r, hashed with h, made at sigTime (now if
// zero). Its hashed subpackets are the creation time, the issuer fingerprint
// and the (non-critical) issuer key id. The input is streamed. It refuses a
// type other than BinarySignature or TextSignature, a hash other than
// SHA-256, SHA-384 or SHA-512, a hash shorter than a P-384 key, and a sigTime
// before the key's creation time. Read and signer errors are returned
// wrapped, and a signature from the signer that does not verify is an error.
func (k *Key) SignReader(r io.Reader, typ SignatureType, h crypto.Hash, sigTime time.Time) ([]byte, error) {
	if typ != BinarySignature && typ != TextSignature {
		return nil, fmt.Errorf("openpgp: signature type 0x%02x is not a document signature type", byte(typ))
	}
	sig, err := k.signature(byte(typ), h, sigTime, nil, func(w io.Writer) error {
		if typ == TextSignature {
			w = &crlfWriter{w: w}
		}
		if _, err := io.Copy(w, r); err != nil {
			return fmt.Errorf("reading data: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("openpgp: signing with key %s: %w", k.FingerprintHex(), err)
	}
	return sig, nil
}

// signature builds a v4 signature packet of type typ with hash h. The
// hashed area holds the creation time, extra, the issuer fingerprint and the
// issuer key id; writeData writes the signed data to the hash before the
// signature trailer.
func (k *Key) signature(typ byte, h crypto.Hash, sigTime time.Time, extra []byte, writeData func(io.Writer) error) ([]byte, error) {
	hid, ok := hashIDs[h]
	if !ok {
		return nil, fmt.Errorf("hash %v is not supported (use SHA-256, SHA-384 or SHA-512)", h)
	}
	if k.algo == algoECDSA && h.Size() < k.hash.Size() {
		return nil, fmt.Errorf("hash %v is shorter than the ECDSA key (use %v or longer)", h, k.hash)
	}
	if sigTime.IsZero() {
		sigTime = time.Now()
	}
	if sigTime.Before(k.created) {
		return nil, fmt.Errorf("signature time %s is before the key creation time %s",
			sigTime.UTC().Format(time.RFC3339), k.created.Format(time.RFC3339))
	}
	if sigTime.Unix() > 1<<32-1 {
		return nil, fmt.Errorf("signature time %s is after 2106", sigTime.UTC().Format(time.RFC3339))
	}

	sub := appendSubpacket(nil, subCreationTime, binary.BigEndian.AppendUint32(nil, uint32(sigTime.Unix())))
	sub = append(sub, extra...)
	sub = appendSubpacket(sub, subIssuerFP, append([]byte{4}, k.fp[:]...))
	sub = appendSubpacket(sub, subIssuerKeyID, k.fp[12:])
	body := []byte{4, typ, k.algo, hid}
	body = binary.BigEndian.AppendUint16(body, uint16(len(sub)))
	body = append(body, sub...)

	hh := h.New()
	if err := writeData(hh); err != nil {
		return nil, err
	}
	hh.Write(body)
	hh.Write([]byte{4, 0xff})
	hh.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
	digest := hh.Sum(nil)

	mpis, err := k.signDigest(digest, h)
	if err != nil {
		return nil, err
	}
	body = append(body, 0, 0) // no unhashed subpackets
	body = append(body, digest[:2]...)
	body = append(body, mpis...)
	return appendPacket(nil, 2, body), nil
}

// signDigest has the signer sign digest and returns the signature MPIs. The
// result is verified against the public key, so a misbehaving signer (say,
// one that hashes again) is caught here and not by the verifier.
func (k *Key) signDigest(digest []byte, h crypto.Hash) ([]byte, error) {
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		sig, err := k.signer.Sign(rand.Reader, digest, h) // PKCS #1 v1.5
		if err != nil {
			return nil, fmt.Errorf("RSA signer: %w", err)
		}
		if err := verifyPKCS1v15(pub, h, digest, sig); err != nil {
			return nil, fmt.Errorf("RSA signer returned a signature that does not verify: %w", err)
		}
		return appendMPI(nil, sig), nil
	case *ecdsa.PublicKey:
		der, err := k.signer.Sign(rand.Reader, digest, h)
		if err != nil {
			return nil, fmt.Errorf("ECDSA signer: %w", err)
		}
		if !ecdsa.VerifyASN1(pub, digest, der) {
			return nil, errors.New("ECDSA signer returned a signature that does not verify")
		}
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) > 0 {
			return nil, errors.New("ECDSA signer returned a malformed ASN.1 signature")
		}
		return appendMPI(appendMPI(nil, rs.R.Bytes()), rs.S.Bytes()), nil
	case ed25519.PublicKey:
		// Legacy EdDSA signs the digest itself as the message (pure Ed25519).
		sig, err := k.signer.Sign(rand.Reader, digest, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("Ed25519 signer: %w", err)
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, digest, sig) {
			return nil, errors.New("Ed25519 signer returned a signature that does not verify")
		}
		return appendMPI(appendMPI(nil, sig[:32]), sig[32:]), nil
	}
	panic("openpgp: key of unknown type") // NewKey admits no other type
}

// appendSubpacket appends a non-critical signature subpacket.
func appendSubpacket(dst []byte, typ byte, data []byte) []byte {
	dst = appendLength(dst, len(data)+1) // the length counts the type byte
	dst = append(dst, typ)
	return append(dst, data...)
}

// crlfWriter canonicalises text the way gpg 2.2 does when it hashes a
// text (0x01) signature: each line (ended by LF) loses its trailing CRs and
// ends in CRLF; other CRs and trailing blanks are kept, and trailing CRs at
// the very end are dropped. For text with LF or CRLF line endings this is
// the RFC 4880 rule "line endings converted to CRLF". State carries across
// writes, and a long run of CRs is counted, not buffered.
type crlfWriter struct {
	w   io.Writer
	crs int // CRs seen and not yet written
	buf []byte
}

var crs = bytes.Repeat([]byte{'\r'}, 512)

func (c *crlfWriter) Write(p []byte) (int, error) {
	c.buf = c.buf[:0]
	for _, b := range p {
		switch b {
		case '\r':
			c.crs++
			continue
		case '\n':
			c.buf = append(c.buf, '\r')
		default:
			for c.crs > 0 { // the CRs were not at the end of a line
				n := min(c.crs, len(crs))
				c.buf = append(c.buf, crs[:n]...)
				c.crs -= n
				if len(c.buf) >= 1<<16 {
					if _, err := c.w.Write(c.buf); err != nil {
						return 0, err
					}
					c.buf = c.buf[:0]
				}
			}
		}
		c.crs = 0
		c.buf = append(c.buf, b)
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
