package authenticode

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// chunkSize is how much of the image is read at a time.
const chunkSize = 256 << 10

// Digest returns the SHA-256 Authenticode digest of the image: the digest
// that a signature over it must carry. It reads the image from its
// io.ReaderAt in chunks and never holds all of it.
func (img *Image) Digest() ([]byte, error) {
	buf := make([]byte, chunkSize)
	d, _, err := img.scan(buf, false)
	return d, err
}

// scan computes the Authenticode digest and, if withSum, the PE checksum
// sum (see peSum) of the padded image up to the certificate table with the
// CheckSum field and the certificate table entry read as zeros. When the
// hashed regions are in file order without overlap (every real image) one
// pass over the file does both.
func (img *Image) scan(buf []byte, withSum bool) (digest []byte, sum uint64, err error) {
	h := sha256.New()
	if img.sequential {
		next := 0
		for off := int64(0); off < img.paddedEnd; {
			chunk := buf[:min(int64(len(buf)), img.paddedEnd-off)]
			if err := img.readPadded(chunk, off); err != nil {
				return nil, 0, err
			}
			end := off + int64(len(chunk))
			for next < len(img.regions) && img.regions[next].off < end {
				r := img.regions[next]
				if s, e := max(r.off, off), min(r.end, end); s < e {
					h.Write(chunk[s-off : e-off])
				}
				if r.end > end {
					break
				}
				next++
			}
			if withSum {
				img.zeroFields(chunk, off)
				sum += peSum(off, chunk)
			}
			off = end
		}
		return h.Sum(nil), sum, nil
	}
	for _, r := range img.regions {
		if err := img.hashRange(h, buf, r.off, r.end); err != nil {
			return nil, 0, err
		}
	}
	if withSum {
		for off := int64(0); off < img.paddedEnd; {
			chunk := buf[:min(int64(len(buf)), img.paddedEnd-off)]
			if err := img.readPadded(chunk, off); err != nil {
				return nil, 0, err
			}
			img.zeroFields(chunk, off)
			sum += peSum(off, chunk)
			off += int64(len(chunk))
		}
	}
	return h.Sum(nil), sum, nil
}

func (img *Image) hashRange(h hash.Hash, buf []byte, off, end int64) error {
	for off < end {
		chunk := buf[:min(int64(len(buf)), end-off)]
		if err := img.readPadded(chunk, off); err != nil {
			return err
		}
		h.Write(chunk)
		off += int64(len(chunk))
	}
	return nil
}

// readPadded reads the image as Sign writes it before the certificate
// table: the file up to dataEnd, then zeros up to paddedEnd.
func (img *Image) readPadded(p []byte, off int64) error {
	n := 0
	if off < img.dataEnd {
		n = int(min(int64(len(p)), img.dataEnd-off))
		if err := readFull(img.r, p[:n], off); err != nil {
			return err
		}
	}
	clear(p[n:])
	return nil
}

// zeroFields clears, in chunk (read at off), the CheckSum field and the
// certificate table entry, the two header fields that signing rewrites.
func (img *Image) zeroFields(chunk []byte, off int64) {
	var zeros [8]byte
	patch(chunk, off, img.checksumOff, zeros[:4])
	patch(chunk, off, img.certDirOff, zeros[:8])
}

// patch copies the bytes b meant for file offset at into chunk, which holds
// the file from offset off; the parts of b outside chunk are left out.
func patch(chunk []byte, off, at int64, b []byte) {
	s, e := max(at, off), min(at+int64(len(b)), off+int64(len(chunk)))
	if s < e {
		copy(chunk[s-off:e-off], b[s-at:e-at])
	}
}

// peSum adds up p, which sits at file offset off, as the PE checksum sees
// it: little-endian 16-bit words aligned to even file offsets. The PE
// checksum is a one's-complement sum (16-bit, end-around carry), which
// depends only on the plain sum modulo 0xffff and on whether that sum is
// zero; so parts of a file can be summed in any order and folded once at
// the end. Since 65536 ≡ 1 (mod 0xffff), a 32-bit little-endian word counts
// as the sum of its two 16-bit halves, which lets the loop add 32 bits at a
// time (4 GiB of input stays far below 2^64).
func peSum(off int64, p []byte) uint64 {
	var s uint64
	if off&1 == 1 && len(p) > 0 {
		s += uint64(p[0]) << 8
		p = p[1:]
	}
	for len(p) >= 8 {
		x := binary.LittleEndian.Uint64(p)
		s += x&0xffffffff + x>>32
		p = p[8:]
	}
	for len(p) >= 2 {
		s += uint64(binary.LittleEndian.Uint16(p))
		p = p[2:]
	}
	if len(p) == 1 {
		s += uint64(p[0])
	}
	return s
}

// peChecksum is the CheckSum of a file of length n whose words add up to
// sum (with the CheckSum field itself counted as zero): the sum folded to
// 16 bits with end-around carry, plus the file length.
func peChecksum(sum uint64, n int64) uint32 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint32(sum) + uint32(n)
}
