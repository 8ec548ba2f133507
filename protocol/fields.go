package protocol

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"time"
)

// Field block limits (§3.1, §3.3).
const (
	maxFields   = 255 // pairs in one block
	maxKeyLen   = 255 // bytes; keys are at least 1 byte
	maxValueLen = 255 // bytes; values may be empty

	// maxFieldBlockLen is the largest possible encoded field block.
	maxFieldBlockLen = 1 + maxFields*(1+maxKeyLen+1+maxValueLen)
)

// Field is one key/value pair of a field block.
type Field struct {
	Key   string
	Value []byte
}

// Fields is a field block (§3): key/value pairs in wire order. Order has no
// meaning to receivers, but it is kept so that a decoded block re-encodes to
// the same bytes.
//
// This package is stricter than the reference in one way: a block with the
// same key twice is refused when decoding and when encoding (§3.4 says
// senders MUST NOT repeat keys; the reference receiver lets the later value
// win). Refusing removes any chance of two parsers disagreeing.
type Fields []Field

// IsSafeString reports whether s is a "safe string" as the reference
// receivers check it (§3.2): every byte in 0x20..0x7F. Such a string is
// ASCII and so valid UTF-8. The empty string is safe.
func IsSafeString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7F {
			return false
		}
	}
	return true
}

func isSafeBytes(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7F {
			return false
		}
	}
	return true
}

// isSendSafe is the stricter rule for strings this package builds: 0x20..0x7E
// (§3.2: senders SHOULD NOT use 0x7F).
func isSendSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

// checkKey validates a key: 1..255 bytes, a safe string.
func checkKey(key string, strict bool) error {
	if len(key) == 0 || len(key) > maxKeyLen {
		return fieldErr(key, ErrInvalidField, "key length %d outside 1..%d", len(key), maxKeyLen)
	}
	ok := IsSafeString(key)
	if strict {
		ok = isSendSafe(key)
	}
	if !ok {
		return fieldErr(key, ErrInvalidField, "key is not a safe string")
	}
	return nil
}

// Validate checks that f can be encoded: at most 255 pairs, keys of 1..255
// safe-string bytes (0x20..0x7F), values of at most 255 bytes, no key twice.
func (f Fields) Validate() error {
	if len(f) > maxFields {
		return &LimitError{What: "field count", Value: uint64(len(f)), Limit: maxFields}
	}
	for i, fl := range f {
		if err := checkKey(fl.Key, false); err != nil {
			return err
		}
		if len(fl.Value) > maxValueLen {
			return fieldErr(fl.Key, ErrInvalidField, "value length %d exceeds %d", len(fl.Value), maxValueLen)
		}
		for _, prev := range f[:i] {
			if prev.Key == fl.Key {
				return fieldErr(fl.Key, ErrInvalidField, "key appears twice")
			}
		}
	}
	return nil
}

// AppendBinary appends the encoded block to b. It refuses a block that
// Validate refuses.
func (f Fields) AppendBinary(b []byte) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return b, err
	}
	b = append(b, byte(len(f)))
	for _, fl := range f {
		b = append(b, byte(len(fl.Key)))
		b = append(b, fl.Key...)
		b = append(b, byte(len(fl.Value)))
		b = append(b, fl.Value...)
	}
	return b, nil
}

// MarshalBinary returns the encoded block. It refuses a block that
// Validate refuses.
func (f Fields) MarshalBinary() ([]byte, error) { return f.AppendBinary(nil) }

// UnmarshalBinary decodes exactly one block that fills b. It refuses
// trailing bytes and everything decodeFields refuses.
func (f *Fields) UnmarshalBinary(b []byte) error {
	v, n, err := decodeFields(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return malformed("field block", "%d trailing bytes after the block", len(b)-n)
	}
	*f = v
	return nil
}

// decodeFields decodes one block from the start of b and returns it with
// the number of bytes it used. It refuses a key of length 0, a key that is
// not a safe string, a key that appears twice, and a block that b cuts
// short (an error wrapping io.ErrUnexpectedEOF, or io.EOF if b is empty).
func decodeFields(b []byte) (Fields, int, error) {
	r := byteSliceReader{b: b}
	f, _, err := readFields(&r, false)
	return f, r.off, err
}

// ReadFields reads one block from r, reading exactly its bytes and nothing
// after them, and returns it with its raw bytes. It returns io.EOF if r ends
// before the first byte and an error wrapping io.ErrUnexpectedEOF if it
// ends inside the block; otherwise it refuses what decodeFields refuses. At
// most maxFieldBlockLen bytes are read, so memory use is bounded whatever
// the input.
func ReadFields(r io.Reader) (Fields, []byte, error) {
	return readFields(r, true)
}

type byteSliceReader struct {
	b   []byte
	off int
}

func (r *byteSliceReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func readFields(r io.Reader, keepRaw bool) (Fields, []byte, error) {
	var raw []byte
	var small [1]byte
	var buf [maxKeyLen]byte
	read := func(p []byte, what string, first bool) error {
		if _, err := io.ReadFull(r, p); err != nil {
			if err == io.EOF && first {
				return io.EOF
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return fmt.Errorf("protocol: field block ends inside %s: %w", what, io.ErrUnexpectedEOF)
			}
			return err
		}
		if keepRaw {
			raw = append(raw, p...)
		}
		return nil
	}
	if err := read(small[:], "the field count", true); err != nil {
		return nil, nil, err
	}
	n := int(small[0])
	f := make(Fields, 0, n)
	for i := 0; i < n; i++ {
		if err := read(small[:], fmt.Sprintf("the length of key %d", i), false); err != nil {
			return nil, nil, err
		}
		kl := int(small[0])
		if kl == 0 {
			return nil, nil, malformed("field block", "key %d has length 0", i)
		}
		if err := read(buf[:kl], fmt.Sprintf("key %d", i), false); err != nil {
			return nil, nil, err
		}
		key := string(buf[:kl])
		if !IsSafeString(key) {
			return nil, nil, malformed("field block", "key %d (%q) is not a safe string", i, key)
		}
		for _, prev := range f {
			if prev.Key == key {
				return nil, nil, malformed("field block", "key %q appears twice", key)
			}
		}
		if err := read(small[:], fmt.Sprintf("the value length of %q", key), false); err != nil {
			return nil, nil, err
		}
		val := make([]byte, int(small[0]))
		if err := read(val, fmt.Sprintf("the value of %q", key), false); err != nil {
			return nil, nil, err
		}
		f = append(f, Field{Key: key, Value: val})
	}
	return f, raw, nil
}

// Clone returns a deep copy of f.
func (f Fields) Clone() Fields {
	if f == nil {
		return nil
	}
	c := make(Fields, len(f))
	for i, fl := range f {
		c[i] = Field{Key: fl.Key, Value: slices.Clone(fl.Value)}
	}
	return c
}

// Zero overwrites every value with zero bytes, for blocks that held
// secrets (passwords, passphrases, MAC keys).
func (f Fields) Zero() {
	for _, fl := range f {
		clear(fl.Value)
	}
}

// Keys returns the keys in order.
func (f Fields) Keys() []string {
	k := make([]string, len(f))
	for i, fl := range f {
		k[i] = fl.Key
	}
	return k
}

// Lookup returns the value of key and whether it is present. The value is
// not copied.
func (f Fields) Lookup(key string) ([]byte, bool) {
	for i := len(f) - 1; i >= 0; i-- { // later wins, as in the reference
		if f[i].Key == key {
			return f[i].Value, true
		}
	}
	return nil, false
}

// Has reports whether key is present.
func (f Fields) Has(key string) bool {
	_, ok := f.Lookup(key)
	return ok
}

func (f Fields) need(key string) ([]byte, error) {
	v, ok := f.Lookup(key)
	if !ok {
		return nil, &FieldError{Key: key, Err: ErrMissingField, Reason: "required field missing"}
	}
	return v, nil
}

// Blob returns the raw value of key (type blob, §3.3), or a *FieldError
// wrapping ErrMissingField.
func (f Fields) Blob(key string) ([]byte, error) { return f.need(key) }

// Str returns the value of key as a string (§3.3). It refuses a missing key
// (ErrMissingField) and a value that is not a safe string (ErrInvalidField).
func (f Fields) Str(key string) (string, error) {
	v, err := f.need(key)
	if err != nil {
		return "", err
	}
	if err := TypeString.Check(key, v); err != nil {
		return "", err
	}
	return string(v), nil
}

// U32 returns the value of key as a big-endian u32. It refuses a missing
// key and a value that is not exactly 4 bytes.
func (f Fields) U32(key string) (uint32, error) {
	v, err := f.need(key)
	if err != nil {
		return 0, err
	}
	if err := TypeU32.Check(key, v); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(v), nil
}

// Bool returns the value of key as a bool. It refuses a missing key and any
// value other than the single byte 00 or 01.
func (f Fields) Bool(key string) (bool, error) {
	v, err := f.need(key)
	if err != nil {
		return false, err
	}
	if err := TypeBool.Check(key, v); err != nil {
		return false, err
	}
	return v[0] == 1, nil
}

// Date returns the value of key, a YYYY-MM-DD date, as midnight UTC of that
// day. It refuses a missing key and a value that does not match the pattern
// or is not a real calendar date.
func (f Fields) Date(key string) (time.Time, error) {
	v, err := f.need(key)
	if err != nil {
		return time.Time{}, err
	}
	if err := TypeDate.Check(key, v); err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.DateOnly, string(v))
}

// Enum returns the value of key, which must be a safe string equal to one
// of allowed. It refuses a missing key and any other value.
func (f Fields) Enum(key string, allowed ...string) (string, error) {
	s, err := f.Str(key)
	if err != nil {
		return "", err
	}
	if !slices.Contains(allowed, s) {
		return "", fieldErr(key, ErrInvalidField, "value %q is not one of %q", s, allowed)
	}
	return s, nil
}

// Set sets key to a copy of value, replacing an existing value in place or
// appending the pair. It refuses a key that is empty, longer than 255 bytes
// or not made of bytes 0x20..0x7E, a value longer than 255 bytes, and a
// 256th pair.
func (f *Fields) Set(key string, value []byte) error {
	if err := checkKey(key, true); err != nil {
		return err
	}
	if len(value) > maxValueLen {
		return fieldErr(key, ErrInvalidField, "value length %d exceeds %d", len(value), maxValueLen)
	}
	v := slices.Clone(value)
	if v == nil {
		v = []byte{}
	}
	for i := range *f {
		if (*f)[i].Key == key {
			(*f)[i].Value = v
			return nil
		}
	}
	if len(*f) >= maxFields {
		return &LimitError{What: "field count", Value: uint64(len(*f) + 1), Limit: maxFields}
	}
	*f = append(*f, Field{Key: key, Value: v})
	return nil
}

// SetStr sets a string value. Besides what Set refuses, it refuses a value
// with a byte outside 0x20..0x7E (§3.2).
func (f *Fields) SetStr(key, value string) error {
	if !isSendSafe(value) {
		return fieldErr(key, ErrInvalidField, "value is not a safe string")
	}
	return f.Set(key, []byte(value))
}

// SetU32 sets a big-endian u32 value. It refuses what Set refuses.
func (f *Fields) SetU32(key string, value uint32) error {
	return f.Set(key, binary.BigEndian.AppendUint32(nil, value))
}

// SetBool sets a bool value (01 or 00). It refuses what Set refuses.
func (f *Fields) SetBool(key string, value bool) error {
	b := []byte{0}
	if value {
		b[0] = 1
	}
	return f.Set(key, b)
}

// SetDate sets a YYYY-MM-DD date value from t's year, month and day. It
// refuses years outside 0000..9999 and what Set refuses.
func (f *Fields) SetDate(key string, t time.Time) error {
	if t.Year() < 0 || t.Year() > 9999 {
		return fieldErr(key, ErrInvalidField, "year %d cannot be written as YYYY", t.Year())
	}
	return f.Set(key, []byte(t.Format(time.DateOnly)))
}

// Delete removes key if present.
func (f *Fields) Delete(key string) {
	*f = slices.DeleteFunc(*f, func(fl Field) bool { return fl.Key == key })
}

// FieldType is the conventional type of a field (§3.3). The wire carries no
// type tags; the type is a property of the field name.
type FieldType uint8

// The value types of §3.3.
const (
	TypeBlob   FieldType = iota // raw bytes
	TypeString                  // safe string, may be empty
	TypeBool                    // 1 byte, 00 or 01
	TypeU32                     // 4 bytes, big-endian
	TypeDate                    // string YYYY-MM-DD, a real calendar date
	TypeEnum                    // safe string from a fixed list
)

// String returns the type's name as the specification writes it.
func (t FieldType) String() string {
	switch t {
	case TypeBlob:
		return "blob"
	case TypeString:
		return "string"
	case TypeBool:
		return "bool"
	case TypeU32:
		return "u32"
	case TypeDate:
		return "date"
	case TypeEnum:
		return "enum"
	}
	return fmt.Sprintf("FieldType(%d)", uint8(t))
}

// Check reports whether value is a valid value of type t for the field key
// (key is used only in the error). Blobs are always valid; an enum is
// checked only as a safe string here (OpSpec validation checks its list).
// The error is a *FieldError wrapping ErrInvalidField and never contains
// the value.
func (t FieldType) Check(key string, value []byte) error {
	switch t {
	case TypeBlob:
		return nil
	case TypeString, TypeEnum:
		if !isSafeBytes(value) {
			return fieldErr(key, ErrInvalidField, "%s value is not a safe string", t)
		}
	case TypeBool:
		if len(value) != 1 {
			return fieldErr(key, ErrInvalidField, "bool value must be 1 byte, got %d", len(value))
		}
		if value[0] > 1 {
			return fieldErr(key, ErrInvalidField, "bool value must be 00 or 01")
		}
	case TypeU32:
		if len(value) != 4 {
			return fieldErr(key, ErrInvalidField, "u32 value must be 4 bytes, got %d", len(value))
		}
	case TypeDate:
		if !validDate(value) {
			return fieldErr(key, ErrInvalidField, "date value is not a calendar date YYYY-MM-DD")
		}
	default:
		return fieldErr(key, ErrInvalidField, "unknown field type %d", uint8(t))
	}
	return nil
}

func validDate(v []byte) bool {
	if len(v) != 10 || v[4] != '-' || v[7] != '-' {
		return false
	}
	for i, c := range v {
		if i == 4 || i == 7 {
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
	}
	t, err := time.Parse(time.DateOnly, string(v))
	return err == nil && t.Format(time.DateOnly) == string(v)
}
