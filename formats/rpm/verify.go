package rpm

import (
	"bytes"
	"crypto"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 payload digests
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// copyBufSize is the buffer for streaming header and payload.
const copyBufSize = 256 << 10

// VerifyHeader checks the main header against the digests of it in the
// signature header: SHA-256 (tag 273) and SHA-1 (tag 269), whichever are
// present. A mismatch, a malformed digest, or a package with neither
// digest gives an error wrapping ErrCorrupt. Signatures are not checked:
// that needs the signer's certificate (rpmkeys --checksig).
func (p *Package) VerifyHeader() error {
	return verifyHeaderDigests(p.sig, p.main.raw, p.hdrSHA256[:])
}

// verifyHeaderDigests checks the header digests in sig against main, whose
// SHA-256 is sum256.
func verifyHeaderDigests(sig *header, main, sum256 []byte) error {
	s256, has256, err := sig.str(sigTagSHA256)
	if err != nil {
		return err
	}
	s1, has1, err := sig.str(sigTagSHA1)
	if err != nil {
		return err
	}
	if !has256 && !has1 {
		return corruptf("%s has no header digest (neither SHA-256, tag %d, nor SHA-1, tag %d)", sig.name, sigTagSHA256, sigTagSHA1)
	}
	if has256 {
		if err := compareHex(s256, sum256, "main header SHA-256", sig.name); err != nil {
			return err
		}
	}
	if has1 {
		sum1 := sha1.Sum(main)
		if err := compareHex(s1, sum1[:], "main header SHA-1", sig.name); err != nil {
			return err
		}
	}
	return nil
}

// compareHex compares a hex digest stored in a header (either case) with
// the computed one.
func compareHex(stored string, sum []byte, what, where string) error {
	want, err := hex.DecodeString(stored)
	if err != nil || len(want) != len(sum) {
		return corruptf("%s holds a malformed %s digest %q", where, what, stored)
	}
	if !bytes.Equal(want, sum) {
		return corruptf("%s digest mismatch: %s says %s, the data has %x", what, where, stored, sum)
	}
	return nil
}

// Verify checks the whole package as rpm -K --nosignature does, and its
// size: VerifyHeader, then, reading the main header and payload from r
// (streamed, from MainOffset to Size), the payload digest (main header tag
// 5092, or its alternative 5097, the digest of an uncompressed payload, in
// the algorithm of tag 5093), the MD5 digest of header and payload
// (signature tag 1004), and the header+payload size (signature tags 1000
// and 270). r must hold the package Read was given, all of it. A mismatch,
// or a package shorter or longer than its size tags say, gives an error
// wrapping ErrCorrupt. A package with neither payload digest nor MD5 has
// only its header checked, as with rpm.
func (p *Package) Verify(r io.ReaderAt) error {
	if err := p.VerifyHeader(); err != nil {
		return err
	}
	c, err := p.newStreamCheck(false)
	if err != nil {
		return err
	}
	if err := p.copyRest(c, r); err != nil {
		return err
	}
	return c.finish()
}

// copyRest writes the bytes of r from MainOffset to Size to w and fails,
// wrapping ErrCorrupt, if r ends early.
func (p *Package) copyRest(w io.Writer, r io.ReaderAt) error {
	want := p.Size - p.MainOffset
	n, err := io.CopyBuffer(w, io.NewSectionReader(r, p.MainOffset, want), make([]byte, copyBufSize))
	if err != nil {
		return fmt.Errorf("rpm: copying %s: %w", p, err)
	}
	if n != want {
		return corruptf("truncated package: %d bytes after offset %d, want %d", n, p.MainOffset, want)
	}
	return nil
}

// streamCheck is written the main header and payload as they are streamed
// and checks them at the end against the package's digests and sizes.
type streamCheck struct {
	p        *Package
	n        int64     // bytes written so far
	hdr      hash.Hash // SHA-256 of the main header bytes
	md5      hash.Hash // MD5 of header and payload, if wanted or stored
	wantMD5  []byte
	pay      hash.Hash // payload digest, if the main header has one
	payAlgo  string
	wantPay  [][]byte // the stored digests and their uncompressed alternatives; one must match
	size     uint64   // stored header+payload size
	sizeTags []uint32
}

// payloadHashes maps rpm's (OpenPGP) hash algorithm ids to hashes.
var payloadHashes = map[uint32]crypto.Hash{
	2: crypto.SHA1, 8: crypto.SHA256, 9: crypto.SHA384, 10: crypto.SHA512, 11: crypto.SHA224,
}

// newStreamCheck reads what the stream will be checked against; with
// withMD5, the MD5 is computed even when the package stores none.
func (p *Package) newStreamCheck(withMD5 bool) (*streamCheck, error) {
	c := &streamCheck{p: p, hdr: sha256.New()}
	md, err := p.sig.bin(sigTagMD5)
	if err != nil {
		return nil, err
	}
	if md != nil {
		if len(md) != md5.Size {
			return nil, corruptf("signature header MD5 is %d bytes, want %d", len(md), md5.Size)
		}
		c.wantMD5 = md
	}
	if md != nil || withMD5 {
		c.md5 = md5.New()
	}
	for _, tag := range []uint32{tagPayloadDigest, tagPayloadAlt} {
		d, err := p.main.strs(tag)
		if err != nil {
			return nil, err
		}
		for _, s := range d {
			b, err := hex.DecodeString(s)
			if err != nil {
				return nil, corruptf("main header tag %d holds a malformed payload digest %q", tag, s)
			}
			c.wantPay = append(c.wantPay, b)
		}
	}
	if len(c.wantPay) > 0 {
		algo, ok, err := p.main.uint32v(tagPayloadAlgo)
		if err != nil {
			return nil, err
		}
		if !ok {
			algo = 8 // rpm assumes SHA-256
		}
		h, known := payloadHashes[algo]
		if !known || !h.Available() {
			return nil, corruptf("unsupported payload digest algorithm %d", algo)
		}
		c.pay, c.payAlgo = h.New(), h.String()
		for _, w := range c.wantPay {
			if len(w) != h.Size() {
				return nil, corruptf("main header holds a %d-byte %s payload digest, want %d bytes", len(w), h, h.Size())
			}
		}
	}
	size32, has32, err := p.sig.uint32v(sigTagSize)
	if err != nil {
		return nil, err
	}
	size64, has64, err := p.sig.uint64v(sigTagLongSize)
	if err != nil {
		return nil, err
	}
	switch {
	case has32 && has64 && uint64(size32) != size64:
		return nil, corruptf("signature header sizes disagree: SIZE %d, LONGSIZE %d", size32, size64)
	case has32:
		c.size, c.sizeTags = uint64(size32), []uint32{sigTagSize}
	case has64:
		c.size, c.sizeTags = size64, []uint32{sigTagLongSize}
	}
	return c, nil
}

// storedSize returns the header+payload size the signature header records.
func (c *streamCheck) storedSize() (uint64, bool) { return c.size, len(c.sizeTags) > 0 }

func (c *streamCheck) Write(b []byte) (int, error) {
	n := len(b)
	if c.md5 != nil {
		c.md5.Write(b)
	}
	if left := int64(len(c.p.main.raw)) - c.n; left > 0 {
		k := min(left, int64(len(b)))
		c.hdr.Write(b[:k])
		b = b[k:]
	}
	if c.pay != nil {
		c.pay.Write(b)
	}
	c.n += int64(n)
	return n, nil
}

// finish checks what was written. The main header must be the one Read
// saw (the file may have changed since).
func (c *streamCheck) finish() error {
	if c.n < int64(len(c.p.main.raw)) || !bytes.Equal(c.hdr.Sum(nil), c.p.hdrSHA256[:]) {
		return corruptf("the main header read now differs from the one read before")
	}
	if size, ok := c.storedSize(); ok && uint64(c.n) != size {
		return corruptf("header and payload are %d bytes, the signature header says %d (tag %d): truncated or extended package", c.n, size, c.sizeTags[0])
	}
	if c.pay != nil {
		sum := c.pay.Sum(nil)
		ok := false
		for _, w := range c.wantPay {
			ok = ok || bytes.Equal(sum, w)
		}
		if !ok {
			return corruptf("payload %s digest mismatch", c.payAlgo)
		}
	}
	if c.wantMD5 != nil && !bytes.Equal(c.md5.Sum(nil), c.wantMD5) {
		return corruptf("MD5 digest mismatch over header and payload")
	}
	return nil
}
