package openpgp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The little GVariant serialisation that OSTree's detached commit metadata
// (type a{sv}) needs, following the GVariant specification 1.0: values in
// normal form, framing offsets little-endian. Only the shapes used here are
// handled: arrays of variable-size elements (aay, a{sv}), the dictionary
// entry {sv}, variants and byte strings.

// gvVariantAlign is the alignment of a variant, and so of {sv}.
const gvVariantAlign = 8

// errGVariant reports serialised data that is not of the expected shape.
var errGVariant = errors.New("malformed GVariant data")

// gvPad appends zero bytes to b up to a multiple of align.
func gvPad(b []byte, align int) []byte {
	for len(b)%align != 0 {
		b = append(b, 0)
	}
	return b
}

// gvOffsetSize returns the size of the framing offsets of a container with
// a body of bodyLen bytes and n offsets: the smallest of 1, 2, 4 and 8 for
// which the whole container, offsets included, can be addressed by it.
func gvOffsetSize(bodyLen, n int) int {
	for _, size := range []int{1, 2, 4} {
		if uint64(bodyLen)+uint64(n*size) <= uint64(1)<<(8*size)-1 {
			return size
		}
	}
	return 8
}

// gvReadOffsetSize returns the framing offset size of a serialised
// container of n bytes.
func gvReadOffsetSize(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= math.MaxUint8:
		return 1
	case n <= math.MaxUint16:
		return 2
	case uint64(n) <= math.MaxUint32:
		return 4
	}
	return 8
}

func gvAppendOffsets(b []byte, offsets []int) []byte {
	size := gvOffsetSize(len(b), len(offsets))
	for _, o := range offsets {
		var buf [8]byte
		binary.LittleEndian.PutUint64(buf[:], uint64(o))
		b = append(b, buf[:size]...)
	}
	return b
}

// gvReadOffset reads a framing offset of len(b) bytes.
func gvReadOffset(b []byte) int {
	var buf [8]byte
	copy(buf[:], b)
	v := binary.LittleEndian.Uint64(buf[:])
	if v > math.MaxInt32 {
		return math.MaxInt32 // out of range for any slice it is checked against
	}
	return int(v)
}

// gvArray serialises an array of variable-size elements, each already
// serialised, whose type has alignment align: the elements, each padded to
// align, then the end offset of each.
func gvArray(elems [][]byte, align int) []byte {
	var b []byte
	offsets := make([]int, 0, len(elems))
	for _, e := range elems {
		b = gvPad(b, align)
		b = append(b, e...)
		offsets = append(offsets, len(b))
	}
	return gvAppendOffsets(b, offsets)
}

// gvParseArray splits a serialised array of variable-size elements of
// alignment align into its elements.
func gvParseArray(b []byte, align int) ([][]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	size := gvReadOffsetSize(len(b))
	if len(b) < size {
		return nil, fmt.Errorf("%w: array of %d bytes", errGVariant, len(b))
	}
	start := gvReadOffset(b[len(b)-size:]) // the end of the last element
	if start > len(b)-size || (len(b)-start)%size != 0 {
		return nil, fmt.Errorf("%w: array offset table at %d of %d bytes", errGVariant, start, len(b))
	}
	n := (len(b) - start) / size
	elems := make([][]byte, 0, n)
	prev := 0
	for i := range n {
		end := gvReadOffset(b[start+i*size : start+(i+1)*size])
		begin := prev + (align-prev%align)%align
		if begin > end || end > start {
			return nil, fmt.Errorf("%w: array element %d from %d to %d of %d bytes", errGVariant, i, begin, end, start)
		}
		elems = append(elems, b[begin:end])
		prev = end
	}
	return elems, nil
}

// gvDictEntry serialises the dictionary entry {sv} of key and the
// serialised variant value: the key with its NUL, padding to the variant's
// alignment, the variant and the end offset of the key.
func gvDictEntry(key string, value []byte) []byte {
	b := append([]byte(key), 0)
	keyEnd := len(b)
	b = gvPad(b, gvVariantAlign)
	b = append(b, value...)
	return gvAppendOffsets(b, []int{keyEnd})
}

// gvParseDictEntry splits a serialised {sv} into the key and the serialised
// variant.
func gvParseDictEntry(b []byte) (string, []byte, error) {
	size := gvReadOffsetSize(len(b))
	if len(b) < size+1 {
		return "", nil, fmt.Errorf("%w: dictionary entry of %d bytes", errGVariant, len(b))
	}
	keyEnd := gvReadOffset(b[len(b)-size:])
	valueStart := keyEnd + (gvVariantAlign-keyEnd%gvVariantAlign)%gvVariantAlign
	if keyEnd < 1 || valueStart > len(b)-size {
		return "", nil, fmt.Errorf("%w: dictionary key ends at %d of %d bytes", errGVariant, keyEnd, len(b))
	}
	key := b[:keyEnd]
	if key[len(key)-1] != 0 || bytes.IndexByte(key[:len(key)-1], 0) >= 0 {
		return "", nil, fmt.Errorf("%w: dictionary key %q is not a string", errGVariant, key)
	}
	return string(key[:len(key)-1]), b[valueStart : len(b)-size], nil
}

// gvVariant serialises a variant of the given type and serialised value:
// the value, a NUL and the type string.
func gvVariant(typ string, value []byte) []byte {
	b := append(bytes.Clone(value), 0)
	return append(b, typ...)
}

// gvParseVariant splits a serialised variant into its type and value.
func gvParseVariant(b []byte) (string, []byte, error) {
	i := bytes.LastIndexByte(b, 0)
	if i < 0 || i == len(b)-1 {
		return "", nil, fmt.Errorf("%w: variant without a type", errGVariant)
	}
	return string(b[i+1:]), b[:i], nil
}
