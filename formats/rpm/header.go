package rpm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

// Header data types (rpm's rpmTagType).
const (
	typeNull        = 0
	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

// typeSize is the size of one item of each type (-1: NUL-terminated
// strings); typeAlign the alignment of its data within the data area.
var (
	typeSize  = [...]int64{0, 1, 1, 2, 4, 8, -1, 1, -1, -1}
	typeAlign = [...]int64{1, 1, 1, 2, 4, 8, 1, 1, 1, 1}
)

var headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}

const (
	introSize = 16 // magic, il, dl
	entrySize = 16 // tag, type, offset, count

	// Region tags: the first index entry of a header, whose data (the
	// last 16 bytes of the data area) is a copy of an index entry with a
	// negative offset that says how many entries the region covers.
	tagHeaderImage      = 61
	tagHeaderSignatures = 62
	tagHeaderImmutable  = 63
	tagFirstData        = 100 // rpm rejects smaller tags outside the region entry

	// maxHeaderBlob is rpm's headerMaxbytes: no header may reach it.
	maxHeaderBlob = 256 << 20
)

// limits bound a header's index entry count and data size before anything
// is allocated. They are rpm 4.18's: at most 32 entries and 64 MiB in a
// signature header, 65535 entries and 256 MiB in the main header.
type limits struct{ entries, data int64 }

var (
	sigLimits  = limits{entries: 32, data: 64 << 20}
	mainLimits = limits{entries: 0xffff, data: 0x0fffffff}
)

// entry is one parsed index entry; off and size locate its data in the
// header's data area.
type entry struct {
	tag, typ, count uint32
	off, size       int64
}

// header is one parsed and checked header structure, kept as stored.
type header struct {
	name    string // "signature header" or "main header", for messages
	raw     []byte // magic, il, dl, index, data; no padding
	data    []byte // the data area, a slice of raw
	entries []entry
	byTag   map[uint32]int // index into entries; -1 for a repeated tag
	region  bool           // has the region (62 or 63) rpm expects
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// readHeader reads and checks the header that starts at off, with r holding
// size bytes. The index and data sizes are checked against lim and against
// size before the header is read, so a lying count costs nothing.
func readHeader(r io.ReaderAt, off, size int64, lim limits, regionTag uint32, name string) (*header, error) {
	var intro [introSize]byte
	if off+introSize > size {
		return nil, corruptf("truncated %s: %d bytes at offset %d, the header needs at least %d", name, max(size-off, 0), off, introSize)
	}
	if err := readFull(r, intro[:], off, name); err != nil {
		return nil, err
	}
	n, err := headerLen(intro[:], lim, name)
	if err != nil {
		return nil, err
	}
	if off+n > size {
		return nil, corruptf("truncated %s: it needs %d bytes at offset %d, only %d are there", name, n, off, size-off)
	}
	raw := make([]byte, n)
	if err := readFull(r, raw, off, name); err != nil {
		return nil, err
	}
	return parseHeader(raw, lim, regionTag, name)
}

// readFull reads len(b) bytes at off; a short read is a truncated package.
func readFull(r io.ReaderAt, b []byte, off int64, name string) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
		return corruptf("truncated %s: read %d of %d bytes at offset %d", name, n, len(b), off)
	}
	return fmt.Errorf("rpm: reading %s at offset %d: %w", name, off, err)
}

// headerLen checks a header's 16-byte intro and returns the header's length
// without padding (16 + 16*il + dl).
func headerLen(intro []byte, lim limits, name string) (int64, error) {
	if !bytes.Equal(intro[:8], headerMagic) {
		return 0, corruptf("bad %s magic % x", name, intro[:8])
	}
	il := int64(binary.BigEndian.Uint32(intro[8:]))
	dl := int64(binary.BigEndian.Uint32(intro[12:]))
	if il > lim.entries {
		return 0, corruptf("%s has %d index entries (at most %d allowed)", name, il, lim.entries)
	}
	if dl > lim.data {
		return 0, corruptf("%s has %d data bytes (at most %d allowed)", name, dl, lim.data)
	}
	n := introSize + entrySize*il + dl
	if n-8 >= maxHeaderBlob {
		return 0, corruptf("%s of %d bytes is too large", name, n)
	}
	return n, nil
}

// parseHeader checks raw, a whole header without padding, as rpm does when
// it reads a package: the region entry and its trailer, which in a package
// must cover the whole header, and for every other entry a known type, an
// aligned offset inside the data area, data that fits, and offsets in
// increasing order without overlap. A header without a region entry (very
// old packages) is accepted, as rpm does, with region false.
func parseHeader(raw []byte, lim limits, regionTag uint32, name string) (*header, error) {
	if len(raw) < introSize {
		return nil, corruptf("truncated %s: %d bytes", name, len(raw))
	}
	n, err := headerLen(raw[:introSize], lim, name)
	if err != nil {
		return nil, err
	}
	if n != int64(len(raw)) {
		return nil, corruptf("%s is %d bytes, its counts say %d", name, len(raw), n)
	}
	il := int(binary.BigEndian.Uint32(raw[8:]))
	dl := int64(binary.BigEndian.Uint32(raw[12:]))
	if il < 1 {
		return nil, corruptf("%s has no index entries", name)
	}
	h := &header{
		name:    name,
		raw:     raw,
		data:    raw[introSize+entrySize*il:],
		entries: make([]entry, il),
		byTag:   make(map[uint32]int, il),
	}
	idx := raw[introSize : introSize+entrySize*il]
	for i := range h.entries {
		e := idx[entrySize*i:]
		h.entries[i] = entry{
			tag:   binary.BigEndian.Uint32(e),
			typ:   binary.BigEndian.Uint32(e[4:]),
			off:   int64(int32(binary.BigEndian.Uint32(e[8:]))),
			count: binary.BigEndian.Uint32(e[12:]),
		}
	}

	first := 0
	if t := h.entries[0].tag; t == regionTag {
		if err := h.checkRegion(regionTag, dl); err != nil {
			return nil, err
		}
		h.region = true
		first = 1
	}
	end := int64(0)
	limit := dl // data must stay clear of the region trailer
	if h.region {
		limit = dl - entrySize
	}
	for i := first; i < il; i++ {
		e := &h.entries[i]
		if e.off < 0 || e.off > limit {
			return nil, corruptf("%s entry %d (tag %d): offset %d is outside the %d data bytes", name, i, e.tag, e.off, limit)
		}
		if e.off < end {
			return nil, corruptf("%s entry %d (tag %d): data at offset %d overlaps the previous entry's, which ends at %d", name, i, e.tag, e.off, end)
		}
		if e.tag < tagFirstData {
			return nil, corruptf("%s entry %d: invalid tag %d", name, i, e.tag)
		}
		if e.typ == typeNull || e.typ > typeI18NString {
			return nil, corruptf("%s entry %d (tag %d): invalid type %d", name, i, e.tag, e.typ)
		}
		if e.off%typeAlign[e.typ] != 0 {
			return nil, corruptf("%s entry %d (tag %d): offset %d is not aligned for type %d", name, i, e.tag, e.off, e.typ)
		}
		size, ok := dataSize(e.typ, e.count, h.data[e.off:limit])
		if !ok {
			return nil, corruptf("%s entry %d (tag %d, type %d, count %d): data does not fit at offset %d", name, i, e.tag, e.typ, e.count, e.off)
		}
		e.size = size
		end = e.off + size
		if _, dup := h.byTag[e.tag]; dup {
			h.byTag[e.tag] = -1
		} else {
			h.byTag[e.tag] = i
		}
	}
	return h, nil
}

// checkRegion checks the region entry (entry 0) and its trailer: in a
// package file the region must cover every entry and all the data.
func (h *header) checkRegion(regionTag uint32, dl int64) error {
	e := h.entries[0]
	if e.typ != typeBin || e.count != entrySize {
		return corruptf("%s region tag %d: type %d count %d (want type %d count %d)", h.name, e.tag, e.typ, e.count, typeBin, entrySize)
	}
	if e.off < 0 || e.off+entrySize > dl {
		return corruptf("%s region trailer at offset %d is outside the %d data bytes", h.name, e.off, dl)
	}
	t := h.data[e.off : e.off+entrySize]
	tag := binary.BigEndian.Uint32(t)
	typ := binary.BigEndian.Uint32(t[4:])
	off := -int64(int32(binary.BigEndian.Uint32(t[8:])))
	count := binary.BigEndian.Uint32(t[12:])
	if regionTag == tagHeaderSignatures && tag == tagHeaderImage {
		tag = tagHeaderSignatures // some old packages have this; rpm accepts it
	}
	if tag != regionTag || typ != typeBin || count != entrySize {
		return corruptf("%s region trailer: tag %d type %d count %d", h.name, tag, typ, count)
	}
	if off <= 0 || off%entrySize != 0 || off/entrySize != int64(len(h.entries)) || e.off+entrySize != dl {
		return corruptf("%s region does not cover the header: it covers %d bytes of index and %d of data, the header has %d and %d",
			h.name, off, e.off+entrySize, entrySize*len(h.entries), dl)
	}
	return nil
}

// dataSize returns the size of count items of type typ at the start of b,
// or false if they do not fit (or count is 0, or a string has no NUL).
func dataSize(typ, count uint32, b []byte) (int64, bool) {
	if count == 0 {
		return 0, false
	}
	switch typ {
	case typeString:
		if count != 1 {
			return 0, false
		}
		i := bytes.IndexByte(b, 0)
		return int64(i + 1), i >= 0
	case typeStringArray, typeI18NString:
		if int64(count) > int64(len(b)) { // every string takes a byte at least
			return 0, false
		}
		n := 0
		for range count {
			i := bytes.IndexByte(b[n:], 0)
			if i < 0 {
				return 0, false
			}
			n += i + 1
		}
		return int64(n), true
	default:
		size := typeSize[typ] * int64(count)
		return size, size <= int64(len(b))
	}
}

// lookup returns the entry for tag, nil if there is none, and an error if
// the tag occurs more than once (which would make it ambiguous).
func (h *header) lookup(tag uint32) (*entry, error) {
	i, ok := h.byTag[tag]
	if !ok {
		return nil, nil
	}
	if i < 0 {
		return nil, corruptf("%s has tag %d more than once", h.name, tag)
	}
	return &h.entries[i], nil
}

func (h *header) bytes(e *entry) []byte { return h.data[e.off : e.off+e.size] }

// typed returns the entry for tag after checking its type.
func (h *header) typed(tag, typ uint32) (*entry, error) {
	e, err := h.lookup(tag)
	if err != nil || e == nil {
		return nil, err
	}
	if e.typ != typ {
		return nil, corruptf("%s tag %d has type %d, want %d", h.name, tag, e.typ, typ)
	}
	return e, nil
}

// str returns the STRING value of tag ("", false if absent).
func (h *header) str(tag uint32) (string, bool, error) {
	e, err := h.typed(tag, typeString)
	if err != nil || e == nil {
		return "", false, err
	}
	b := h.bytes(e)
	return string(b[:len(b)-1]), true, nil
}

// strs returns the STRING_ARRAY value of tag (nil if absent).
func (h *header) strs(tag uint32) ([]string, error) {
	e, err := h.typed(tag, typeStringArray)
	if err != nil || e == nil {
		return nil, err
	}
	out := make([]string, 0, e.count)
	for s := range bytes.SplitSeq(h.bytes(e)[:e.size-1], []byte{0}) {
		out = append(out, string(s))
	}
	return out, nil
}

// uint32v returns the first INT32 value of tag.
func (h *header) uint32v(tag uint32) (uint32, bool, error) {
	e, err := h.typed(tag, typeInt32)
	if err != nil || e == nil {
		return 0, false, err
	}
	return binary.BigEndian.Uint32(h.bytes(e)), true, nil
}

// uint64v returns the first INT64 value of tag.
func (h *header) uint64v(tag uint32) (uint64, bool, error) {
	e, err := h.typed(tag, typeInt64)
	if err != nil || e == nil {
		return 0, false, err
	}
	return binary.BigEndian.Uint64(h.bytes(e)), true, nil
}

// bin returns the BIN value of tag (nil if absent).
func (h *header) bin(tag uint32) ([]byte, error) {
	e, err := h.typed(tag, typeBin)
	if err != nil || e == nil {
		return nil, err
	}
	return h.bytes(e), nil
}

// tagData is an entry of a header being built.
type tagData struct {
	tag, typ, count uint32
	data            []byte
}

// buildHeader lays out a header as rpm writes one: the region entry
// first, the other entries sorted by tag with their data in the same order
// (each aligned for its type, the gaps zero), and the region trailer as the
// last 16 data bytes. The result has no trailing padding.
func buildHeader(regionTag uint32, items []tagData) []byte {
	items = append([]tagData(nil), items...)
	sort.SliceStable(items, func(i, j int) bool { return items[i].tag < items[j].tag })
	il := len(items) + 1
	var data []byte
	offs := make([]int, len(items))
	for i, it := range items {
		for int64(len(data))%typeAlign[it.typ] != 0 {
			data = append(data, 0)
		}
		offs[i] = len(data)
		data = append(data, it.data...)
	}
	trailerOff := len(data)
	data = appendEntry(data, regionTag, typeBin, uint32(-int32(entrySize*il)), entrySize)

	out := make([]byte, 0, introSize+entrySize*il+len(data))
	out = append(out, headerMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(il))
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	out = appendEntry(out, regionTag, typeBin, uint32(trailerOff), entrySize)
	for i, it := range items {
		out = appendEntry(out, it.tag, it.typ, uint32(offs[i]), it.count)
	}
	return append(out, data...)
}

func appendEntry(b []byte, tag, typ, off, count uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, tag)
	b = binary.BigEndian.AppendUint32(b, typ)
	b = binary.BigEndian.AppendUint32(b, off)
	return binary.BigEndian.AppendUint32(b, count)
}

// pad8 rounds n up to a multiple of 8, as the signature header is padded.
func pad8(n int64) int64 { return (n + 7) &^ 7 }
