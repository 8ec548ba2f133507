package bridge

import (
	"bytes"
	"encoding/binary"
	"regexp"
	"testing"
)

// sigHeaderSeed builds an RPM signature header holding one BIN entry with
// tag and an OpenPGP packet.
func sigHeaderSeed(tag uint32, pkt []byte) []byte {
	h := []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}
	h = binary.BigEndian.AppendUint32(h, 1)
	h = binary.BigEndian.AppendUint32(h, uint32(len(pkt)))
	for _, v := range []uint32{tag, 7, 0, uint32(len(pkt))} {
		h = binary.BigEndian.AppendUint32(h, v)
	}
	h = append(h, pkt...)
	for len(h)%8 != 0 {
		h = append(h, 0)
	}
	return h
}

var kojiKeyID = regexp.MustCompile(`^[0-9a-f]{8}$`)

// FuzzSigHeader: the signature header of a signed reply, which comes from
// the server (readSigHeader) and whose key id the bridge reads to import it
// into Koji (sigHeaderKey). What readSigHeader returns is the start of the
// input, within the payload's length, and a whole header by its own
// length; a key id is always 8 lower-case hex digits.
func FuzzSigHeader(f *testing.F) {
	issuer := append([]byte{4, 0, 1, 8, 0, 10, 9, 16}, 1, 2, 3, 4, 0xfd, 0xb1, 0x9c, 0x98)
	v4 := append([]byte{0xc2, byte(len(issuer) + 4)}, issuer...)
	v4 = append(v4, 0, 0, 0xab, 0xcd)
	v3 := []byte{0x89, 0, 19, 3, 5, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0xfd, 0xb1, 0x9c, 0x98, 1, 8, 0xab, 0xcd}
	for _, tag := range []uint32{1002, 268} {
		for _, pkt := range [][]byte{v4, v3} {
			seed := sigHeaderSeed(tag, pkt)
			if k, err := sigHeaderKey(seed); err != nil || k != "fdb19c98" {
				f.Fatalf("seed: key id %q, %v", k, err)
			}
			f.Add(seed)
		}
	}
	lead := make([]byte, 96)
	copy(lead, rpmLeadMagic)
	f.Add(append(lead, sigHeaderSeed(1005, v4)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, payloadLen := range []uint64{uint64(len(data)), uint64(len(data)) / 2} {
			prefix, hdr, err := readSigHeader(bytes.NewReader(data), payloadLen)
			if err != nil {
				continue
			}
			if !bytes.HasPrefix(data, prefix) || uint64(len(prefix)) > payloadLen {
				t.Fatalf("prefix of %d bytes is not the input's start within %d bytes", len(prefix), payloadLen)
			}
			off := len(prefix) - len(hdr)
			if off != 0 && off != 96 || !bytes.Equal(prefix[off:], hdr) {
				t.Fatalf("header at %d of a %d-byte prefix", off, len(prefix))
			}
			if l, err := sigHeaderLen(hdr); err != nil || l != int64(len(hdr)) {
				t.Fatalf("header of %d bytes says %d (%v)", len(hdr), l, err)
			}
		}
		if k, err := sigHeaderKey(data); err == nil && !kojiKeyID.MatchString(k) {
			t.Fatalf("key id %q", k)
		}
	})
}
