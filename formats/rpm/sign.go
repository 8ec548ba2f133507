package rpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/signet-project/signet/formats/openpgp"
)

// SignOptions says how to sign a package.
type SignOptions struct {
	// Key makes the OpenPGP signatures. Required; RSA or Ed25519 (rpm
	// 4.18 rejects ECDSA, so ECDSA keys are refused).
	Key *openpgp.Key
	// Time is the signatures' creation time; zero means now.
	Time time.Time
	// V3 also adds the header+payload signature (tag 1002 for RSA, 1005
	// for EdDSA) and, if missing, the MD5 and size of header and payload,
	// which needs the whole file. A package whose main header has no
	// payload digest always gets one, as rpmsign does, since the header
	// signature would not cover its payload.
	V3 bool
	// FileSigner, if set, adds IMA signatures (ECDSA P-256 only) of the
	// file digests listed in the main header (tags 274 and 275). Source
	// packages install no files and get none, as with rpmsign.
	FileSigner crypto.Signer
}

// keptSigTags are the signature header tags that signing keeps, with their
// required types: the digests and sizes. Every other tag is dropped, in
// particular every signature (267, 268, 1002, 1005, IMA 274/275, fs-verity
// 276/277, rpm 6's 278) and unknown tags, which may be signatures too.
var keptSigTags = map[uint32]uint32{
	sigTagSHA1:        typeString,
	sigTagSHA256:      typeString,
	sigTagSize:        typeInt32,
	sigTagLongSize:    typeInt64,
	sigTagMD5:         typeBin,
	sigTagPayloadSize: typeInt32,
	sigTagLongArchive: typeInt64,
}

// signatureTags returns the header-only and header+payload signature tags
// for k's algorithm.
func signatureTags(k *openpgp.Key) (header, v3 uint32, err error) {
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		return sigTagRSA, sigTagPGP, nil
	case ed25519.PublicKey:
		return sigTagDSA, sigTagGPG, nil
	case *ecdsa.PublicKey:
		return 0, 0, errors.New("rpm: an ECDSA key cannot sign RPM packages (rpm 4.18 rejects ECDSA signatures); use an RSA or Ed25519 key")
	default:
		return 0, 0, fmt.Errorf("rpm: cannot sign RPM packages with a %T key; use an RSA or Ed25519 key", pub)
	}
}

// SignatureHeader returns the new signature header for the package: the
// header magic, index and data, zero-padded to a multiple of 8 bytes, that
// is, exactly the bytes that go between the lead and the main header.
//
// It refuses a package whose header digests do not match (VerifyHeader)
// and an RPM v3 package (main header without an immutable region), which
// rpmsign cannot sign either. It keeps the existing digests and sizes
// (tags 269, 273, 1000, 270, 1004, 1007, 271), drops every other tag, in
// particular every existing signature, and adds the OpenPGP signature of
// the main header as stored (tag 268 for RSA, 267 for EdDSA), plus what
// opts asks for. If the old header had reserved space (tag 1008), it is
// shrunk or grown so that the header keeps its size and the file can be
// rewritten in place; if the new tags do not fit even without reserved
// space, the header grows and keeps its reserved space, as with rpmsign.
//
// r needs to hold only the first PayloadOffset bytes, unless a V3
// signature is made (opts.V3, or no payload digest): then r must hold the
// whole package and the payload is checked as it is signed, which gives an
// error wrapping ErrCorrupt on a mismatch and ErrIncomplete if the package
// was read from a prefix.
func (p *Package) SignatureHeader(r io.ReaderAt, opts SignOptions) ([]byte, error) {
	if opts.Key == nil {
		return nil, errors.New("rpm: SignOptions.Key is required")
	}
	hdrTag, v3Tag, err := signatureTags(opts.Key)
	if err != nil {
		return nil, err
	}
	if opts.FileSigner != nil {
		if err := checkFileSigner(opts.FileSigner); err != nil {
			return nil, err
		}
	}
	if !p.main.region {
		return nil, fmt.Errorf("rpm: cannot sign %s: its main header has no immutable region (an RPM v3 package, which rpm cannot sign either)", p)
	}
	if err := p.VerifyHeader(); err != nil {
		return nil, err
	}
	t := opts.Time
	if t.IsZero() {
		t = time.Now()
	}

	var items []tagData
	reserved := -1
	for i := range p.sig.entries {
		e := &p.sig.entries[i]
		if p.sig.region && i == 0 {
			continue
		}
		if e.tag == sigTagReserved {
			if e.typ != typeBin {
				return nil, corruptf("signature header reserved space has type %d, want %d", e.typ, typeBin)
			}
			reserved = int(e.count)
			continue
		}
		typ, keep := keptSigTags[e.tag]
		if !keep {
			continue
		}
		if _, err := p.sig.typed(e.tag, typ); err != nil {
			return nil, err
		}
		items = append(items, tagData{e.tag, e.typ, e.count, append([]byte(nil), p.sig.bytes(e)...)})
	}

	hs, err := opts.Key.SignReader(bytes.NewReader(p.main.raw), openpgp.BinarySignature, crypto.SHA256, t)
	if err != nil {
		return nil, fmt.Errorf("rpm: signing the header of %s: %w", p, err)
	}
	items = append(items, tagData{hdrTag, typeBin, uint32(len(hs)), hs})

	if opts.V3 || !p.HasPayloadDigest() {
		if items, err = p.addV3(items, r, opts.Key, v3Tag, t, opts.V3); err != nil {
			return nil, err
		}
	}
	if opts.FileSigner != nil && !p.source {
		sigs, maxLen, err := p.imaSignatures(opts.FileSigner)
		if err != nil {
			return nil, err
		}
		if len(sigs) > 0 {
			data := []byte(strings.Join(sigs, "\x00") + "\x00")
			items = append(items, tagData{sigTagFileSigs, typeStringArray, uint32(len(sigs)), data})
		}
		if maxLen > 0 {
			items = append(items, tagData{sigTagFileSigLen, typeInt32, 1, binary.BigEndian.AppendUint32(nil, maxLen)})
		}
	}

	if reserved >= 0 {
		// The reserved space's data is last before the trailer and needs no
		// alignment, so each byte of it is one byte of header.
		n := len(p.sig.raw) - len(buildHeader(tagHeaderSignatures, items)) - entrySize
		if n < 1 {
			n = reserved
		}
		items = append(items, tagData{sigTagReserved, typeBin, uint32(n), make([]byte, n)})
	}
	raw := buildHeader(tagHeaderSignatures, items)
	if dl := int64(len(raw)) - introSize - entrySize*int64(len(items)+1); dl > sigLimits.data {
		return nil, fmt.Errorf("rpm: the new signature header of %s would hold %d data bytes, more than rpm reads (%d)", p, dl, sigLimits.data)
	}
	out := make([]byte, pad8(int64(len(raw))))
	copy(out, raw)
	return out, nil
}

// addV3 adds the header+payload signature and, if missing, the MD5 and size
// of header and payload, checking the payload against the stored digests as
// it is signed.
func (p *Package) addV3(items []tagData, r io.ReaderAt, k *openpgp.Key, tag uint32, t time.Time, asked bool) ([]tagData, error) {
	why := ""
	if !asked {
		why = " (its main header has no payload digest, so the header signature would not cover the payload)"
	}
	if r == nil {
		return nil, fmt.Errorf("rpm: %s needs a header+payload signature%s, and no reader of the package was given", p, why)
	}
	c, err := p.newStreamCheck(true)
	if err != nil {
		return nil, err
	}
	have := p.Size - p.MainOffset
	if size, ok := c.storedSize(); ok && size > uint64(have) {
		return nil, fmt.Errorf("%w: %s needs a header+payload signature%s over %d bytes from offset %d, and only %d are here",
			ErrIncomplete, p, why, size, p.MainOffset, have)
	}
	sig, err := k.SignReader(io.TeeReader(io.NewSectionReader(r, p.MainOffset, have), c), openpgp.BinarySignature, crypto.SHA256, t)
	if err != nil {
		return nil, fmt.Errorf("rpm: making the header+payload signature of %s: %w", p, err)
	}
	if c.n != have {
		return nil, corruptf("truncated package: %d bytes after offset %d, want %d", c.n, p.MainOffset, have)
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	items = append(items, tagData{tag, typeBin, uint32(len(sig)), sig})
	if c.wantMD5 == nil {
		items = append(items, tagData{sigTagMD5, typeBin, 16, c.md5.Sum(nil)})
	}
	if _, ok := c.storedSize(); !ok {
		if c.n <= math.MaxUint32 {
			items = append(items, tagData{sigTagSize, typeInt32, 1, binary.BigEndian.AppendUint32(nil, uint32(c.n))})
		} else {
			items = append(items, tagData{sigTagLongSize, typeInt64, 1, binary.BigEndian.AppendUint64(nil, uint64(c.n))})
		}
	}
	return items, nil
}

// Sign writes the signed package: the original lead, the new signature
// header (SignatureHeader) and the bytes of r from MainOffset to Size,
// streamed. While copying it checks the payload digest, MD5 and size as
// Verify does, and that the main header is still the one Read saw; on any
// error the output is incomplete or wrong and must be discarded.
func Sign(w io.Writer, r io.ReaderAt, p *Package, opts SignOptions) error {
	sh, err := p.SignatureHeader(r, opts)
	if err != nil {
		return err
	}
	return p.write(w, r, sh)
}

// Splice writes the package with sigHeader, a signature header made
// elsewhere (head signing), in place of its own: the lead, sigHeader, and
// the bytes of r from MainOffset to Size, streamed. It first checks that
// sigHeader is one well-formed signature header, zero-padded to a multiple
// of 8 bytes, that carries a header signature and whose header digests
// match this package's main header, so that a wrong or garbled reply gives
// an error (wrapping ErrCorrupt) rather than a broken package. While
// copying it checks the payload as Sign does; on any error the output must
// be discarded.
func Splice(w io.Writer, r io.ReaderAt, p *Package, sigHeader []byte) error {
	if err := p.checkSigHeader(sigHeader); err != nil {
		return err
	}
	return p.write(w, r, sigHeader)
}

// checkSigHeader checks a signature header made for this package.
func (p *Package) checkSigHeader(b []byte) error {
	const name = "new signature header"
	if len(b) < introSize {
		return corruptf("%s is %d bytes, too short", name, len(b))
	}
	n, err := headerLen(b[:introSize], sigLimits, name)
	if err != nil {
		return err
	}
	if pad8(n) != int64(len(b)) {
		return corruptf("%s is %d bytes, want %d (a header of %d bytes padded to a multiple of 8)", name, len(b), pad8(n), n)
	}
	if bytes.ContainsFunc(b[n:], func(r rune) bool { return r != 0 }) {
		return corruptf("%s has non-zero padding", name)
	}
	h, err := parseHeader(b[:n], sigLimits, tagHeaderSignatures, name)
	if err != nil {
		return err
	}
	if !h.region {
		return corruptf("%s has no signature region (tag %d)", name, tagHeaderSignatures)
	}
	if err := verifyHeaderDigests(h, p.main.raw, p.hdrSHA256[:]); err != nil {
		return err
	}
	rsaSig, err := h.bin(sigTagRSA)
	if err != nil {
		return err
	}
	dsaSig, err := h.bin(sigTagDSA)
	if err != nil {
		return err
	}
	if rsaSig == nil && dsaSig == nil {
		return corruptf("%s carries no header signature (tag %d or %d)", name, sigTagRSA, sigTagDSA)
	}
	return nil
}

// write writes the lead, sh and the rest of the package from r, checking
// the rest as it goes.
func (p *Package) write(w io.Writer, r io.ReaderAt, sh []byte) error {
	c, err := p.newStreamCheck(false)
	if err != nil {
		return err
	}
	if _, err := w.Write(p.lead[:]); err != nil {
		return fmt.Errorf("rpm: writing %s: %w", p, err)
	}
	if _, err := w.Write(sh); err != nil {
		return fmt.Errorf("rpm: writing %s: %w", p, err)
	}
	if err := p.copyRest(io.MultiWriter(w, c), r); err != nil {
		return err
	}
	return c.finish()
}
