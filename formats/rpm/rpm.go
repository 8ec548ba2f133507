// Package rpm reads RPM v4 packages, checks their digests and makes their
// signature headers: the OpenPGP header signature rpm 4.18 verifies (tag 268
// for RSA, 267 for EdDSA), optionally the older header+payload signature,
// and optionally IMA signatures over the files' digests.
//
// A package is a 96-byte lead, the signature header padded to a multiple of
// 8 bytes, the main header and the payload. Signing replaces only the
// signature header, whose digests and signatures cover the main header (and,
// for the older kind, the payload): the main header and payload are copied
// unchanged. Because the header signature needs only the main header, a
// package can be signed from a prefix that ends after the main header (Sigul's
// "head signing"): SignatureHeader makes the new signature header from the
// prefix, and Splice puts it into the whole file elsewhere.
//
// The package knows nothing of keys' storage: it signs with an
// *openpgp.Key and, for IMA, a crypto.Signer.
package rpm

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrCorrupt is wrapped by every error that reports a malformed, truncated
// or tampered package (or signature header), as opposed to an I/O error or
// a refused request.
var ErrCorrupt = errors.New("rpm: corrupt package")

// ErrIncomplete reports that a header+payload (V3) signature was needed but
// the reader holds only part of the package, as in head signing.
var ErrIncomplete = errors.New("rpm: the whole package is needed")

// Signature header tags.
const (
	sigTagDSA         = 267 // header-only OpenPGP signature, DSA or EdDSA
	sigTagRSA         = 268 // header-only OpenPGP signature, RSA
	sigTagSHA1        = 269 // hex SHA-1 of the main header
	sigTagLongSize    = 270 // header+payload size, INT64
	sigTagLongArchive = 271 // uncompressed payload size, INT64
	sigTagSHA256      = 273 // hex SHA-256 of the main header
	sigTagFileSigs    = 274 // IMA signatures, one hex string per file
	sigTagFileSigLen  = 275 // the longest IMA signature in bytes
	sigTagSize        = 1000
	sigTagPGP         = 1002 // header+payload OpenPGP signature, RSA
	sigTagMD5         = 1004 // MD5 of header+payload
	sigTagGPG         = 1005 // header+payload OpenPGP signature, DSA or EdDSA
	sigTagPayloadSize = 1007 // uncompressed payload size, INT32
	sigTagReserved    = 1008 // zeros kept so that signing can keep the size
)

// Main header tags.
const (
	tagName           = 1000
	tagVersion        = 1001
	tagRelease        = 1002
	tagEpoch          = 1003
	tagArch           = 1022
	tagOldFileNames   = 1027
	tagFileDigests    = 1035
	tagSourceRPM      = 1044
	tagBaseNames      = 1117
	tagFileDigestAlgo = 5011
	tagPayloadDigest  = 5092
	tagPayloadAlgo    = 5093
	tagPayloadAlt     = 5097 // digest of the uncompressed payload
)

const (
	leadSize      = 96
	leadTypeMagic = 0xedabeedb
	sigTypeHeader = 5 // the lead's signature type: "header-style" signature
)

// NEVRA identifies a package as Sigul and Koji do.
type NEVRA struct {
	Name    string
	Epoch   string // decimal; "" when the package has no epoch
	Version string
	Release string
	Arch    string // "src" for source packages
}

// String returns name-[epoch:]version-release.arch.
func (n NEVRA) String() string {
	e := ""
	if n.Epoch != "" {
		e = n.Epoch + ":"
	}
	return n.Name + "-" + e + n.Version + "-" + n.Release + "." + n.Arch
}

// Package is a parsed RPM package: its lead and its two headers, checked as
// rpm checks them when it reads a package. It does not hold the payload.
// Nothing changes it after Read, so it may be used from several goroutines.
type Package struct {
	// Size is the number of bytes Read was given, which is the whole file
	// or, for head signing, a prefix that contains the main header.
	Size int64
	// SigOffset is where the signature header starts (96, after the
	// lead); MainOffset where the main header starts, after the signature
	// header's padding; PayloadOffset where the main header ends.
	SigOffset, MainOffset, PayloadOffset int64

	lead      [leadSize]byte
	sig, main *header
	nevra     NEVRA
	source    bool
	hdrSHA256 [sha256.Size]byte
}

// Read parses the lead, the signature header and the main header of the
// package in the first size bytes of r. Every count and length is checked
// against rpm's limits and against size before anything is allocated for
// it, and every index entry as rpm checks it. It does not look at the
// payload, so size may end at PayloadOffset. A malformed or truncated
// package gives an error wrapping ErrCorrupt; so does one whose main header
// lacks the name, version, release or architecture.
func Read(r io.ReaderAt, size int64) (*Package, error) {
	p := &Package{Size: size, SigOffset: leadSize}
	if size < leadSize {
		return nil, corruptf("truncated lead: %d bytes, want %d", max(size, 0), leadSize)
	}
	if err := readFull(r, p.lead[:], 0, "lead"); err != nil {
		return nil, err
	}
	if err := checkLead(p.lead[:]); err != nil {
		return nil, err
	}
	sig, err := readHeader(r, p.SigOffset, size, sigLimits, tagHeaderSignatures, "signature header")
	if err != nil {
		return nil, err
	}
	p.sig = sig
	p.MainOffset = p.SigOffset + pad8(int64(len(sig.raw)))
	main, err := readHeader(r, p.MainOffset, size, mainLimits, tagHeaderImmutable, "main header")
	if err != nil {
		return nil, err
	}
	p.main = main
	p.PayloadOffset = p.MainOffset + int64(len(main.raw))
	p.hdrSHA256 = sha256.Sum256(main.raw)
	if err := p.readNEVRA(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkLead checks what rpm 4.18 checks in the lead: the magic, a major
// version of 3 or 4, and header-style signatures.
func checkLead(l []byte) error {
	if uint32(l[0])<<24|uint32(l[1])<<16|uint32(l[2])<<8|uint32(l[3]) != leadTypeMagic {
		return corruptf("not an RPM package (lead magic % x)", l[:4])
	}
	if l[4] != 3 && l[4] != 4 {
		return corruptf("unsupported RPM format version %d.%d", l[4], l[5])
	}
	if t := uint16(l[78])<<8 | uint16(l[79]); t != sigTypeHeader {
		return corruptf("lead signature type %d, want %d (header-style)", t, sigTypeHeader)
	}
	return nil
}

func (p *Package) readNEVRA() error {
	h := p.main
	need := func(tag uint32, what string) (string, error) {
		s, ok, err := h.str(tag)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", corruptf("main header has no %s (tag %d)", what, tag)
		}
		return s, nil
	}
	var err error
	if p.nevra.Name, err = need(tagName, "name"); err != nil {
		return err
	}
	if p.nevra.Version, err = need(tagVersion, "version"); err != nil {
		return err
	}
	if p.nevra.Release, err = need(tagRelease, "release"); err != nil {
		return err
	}
	if p.nevra.Arch, err = need(tagArch, "architecture"); err != nil {
		return err
	}
	epoch, ok, err := h.uint32v(tagEpoch)
	if err != nil {
		return err
	}
	if ok {
		p.nevra.Epoch = strconv.FormatUint(uint64(epoch), 10)
	}
	// rpm's own test: a binary package names the source package it was
	// built from; a source package does not.
	e, err := h.lookup(tagSourceRPM)
	if err != nil {
		return err
	}
	p.source = e == nil
	if p.source {
		p.nevra.Arch = "src"
	}
	return nil
}

// NEVRA returns the package's name, epoch, version, release and
// architecture ("src" for a source package).
func (p *Package) NEVRA() NEVRA { return p.nevra }

// IsSource reports whether this is a source package (its main header names
// no source package, as rpm decides).
func (p *Package) IsSource() bool { return p.source }

// SigMD5 returns the MD5 digest of the main header and payload stored in
// the signature header (tag 1004; Koji's "sigmd5"), or nil if there is none
// or it is not 16 bytes of type BIN.
func (p *Package) SigMD5() []byte {
	b, err := p.sig.bin(sigTagMD5)
	if err != nil || len(b) != 16 {
		return nil
	}
	return append([]byte(nil), b...)
}

// HeaderSHA256 returns the SHA-256 digest of the main header as stored,
// computed by Read.
func (p *Package) HeaderSHA256() []byte { return append([]byte(nil), p.hdrSHA256[:]...) }

// HasPayloadDigest reports whether the main header holds a digest of the
// payload (tag 5092 or 5097). Without one, a header signature does not
// cover the payload, so signing adds a header+payload (V3) signature, which
// needs the whole file: such a package cannot be head-signed.
func (p *Package) HasPayloadDigest() bool {
	_, a := p.main.byTag[tagPayloadDigest]
	_, b := p.main.byTag[tagPayloadAlt]
	return a || b
}

// String describes the package for messages.
func (p *Package) String() string { return fmt.Sprintf("RPM package %s", p.nevra) }
