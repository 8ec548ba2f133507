package protocol

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
)

// MAC sizes (§5.2, §6.1).
const (
	// macSize is the length of every HMAC-SHA512 on the wire.
	macSize = 64
	// minKeyLen is the shortest MAC key a server accepts (§4.3 step 9).
	minKeyLen = 64
)

// ErrorCode is a Sigul reply code (§6.3), also used as a sub-reply status.
type ErrorCode uint32

// The error codes of §6.3.
const (
	CodeOK                    ErrorCode = 0
	CodeUnknownVersion        ErrorCode = 1
	CodeUnknownOp             ErrorCode = 2
	CodeAuthenticationFailed  ErrorCode = 3
	CodeAlreadyExists         ErrorCode = 4
	CodeUserNotFound          ErrorCode = 5
	CodeUserHasKeyAccesses    ErrorCode = 6
	CodeKeyUserNotFound       ErrorCode = 7
	CodeKeyNotFound           ErrorCode = 8
	CodeUnknownError          ErrorCode = 9
	CodeOnlyOneKeyUser        ErrorCode = 10
	CodeCorruptRPM            ErrorCode = 11
	CodeUnauthenticatedRPM    ErrorCode = 12
	CodeInvalidImport         ErrorCode = 13
	CodeImportPassphraseError ErrorCode = 14
	CodeDecryptFailed         ErrorCode = 15
	CodeUnsupportedKeytype    ErrorCode = 16
	// CodeKojiError is signet's: the bridge could not do its Koji part of
	// a request (look-up, download, login); the message says which call
	// failed. Sigul 1.2's client shows it as "Error 17: MESSAGE".
	CodeKojiError ErrorCode = 17
)

var codeNames = [...]struct{ name, text string }{
	{"OK", "No error"},
	{"UNKNOWN_VERSION", "Unknown protocol version"},
	{"UNKNOWN_OP", "Unknown operation"},
	{"AUTHENTICATION_FAILED", "Authentication failed"},
	{"ALREADY_EXISTS", "The specified object already exists"},
	{"USER_NOT_FOUND", "The specified user was not found"},
	{"USER_HAS_KEY_ACCESSES", "The specified user can access one or more keys"},
	{"KEY_USER_NOT_FOUND", "The specified user can not access this key"},
	{"KEY_NOT_FOUND", "The specified key was not found"},
	{"UNKNOWN_ERROR", "Unknown error"},
	{"ONLY_ONE_KEY_USER", "This is the only user with access to this key"},
	{"CORRUPT_RPM", "The RPM file is corrupt"},
	{"UNAUTHENTICATED_RPM", "Missing RPM file authentication by client"},
	{"INVALID_IMPORT", "Invalid import file"},
	{"IMPORT_PASSPHRASE_ERROR", "Import passphrase does not match"},
	{"DECRYPT_FAILED", "Decryption failed"},
	{"UNSUPPORTED_KEYTYPE", "Unsupported keytype for operation"},
	{"KOJI_ERROR", "Error 17"}, // signet's; the reference client knows no text for it
}

// String returns Sigul's name for the code, e.g. "AUTHENTICATION_FAILED",
// or "ErrorCode(n)" for a value §6.3 does not define.
func (c ErrorCode) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c].name
	}
	return fmt.Sprintf("ErrorCode(%d)", uint32(c))
}

// Text returns the standard text the reference client shows for the code,
// e.g. "Authentication failed", or "Error n" for an undefined value (§6.3).
func (c ErrorCode) Text() string {
	if int(c) < len(codeNames) {
		return codeNames[c].text
	}
	return fmt.Sprintf("Error %d", uint32(c))
}

// Known reports whether §6.3 defines the code.
func (c ErrorCode) Known() bool { return int(c) < len(codeNames) }

// ReplyError is a non-zero reply code (or sub-reply status) as a Go error.
// Message is the optional message field (§6.4).
type ReplyError struct {
	Code    ErrorCode
	Message string
}

// Error returns the code's standard text followed by ": message" if there
// is one, as the reference client prints it after "Error: ".
func (e *ReplyError) Error() string {
	if e.Message != "" {
		return e.Code.Text() + ": " + e.Message
	}
	return e.Code.Text()
}

// ReplyKeys are the two HMAC-SHA512 keys of one request's reply, sent by
// the client in the inner message (§5.2).
type ReplyKeys struct {
	Header  []byte // header-auth-key, covers Y1‖Y2
	Payload []byte // payload-auth-key, covers Y5
}

// Zero overwrites the keys with zeros.
func (k ReplyKeys) Zero() { clear(k.Header); clear(k.Payload) }

func computeMAC(key, msg []byte) []byte {
	m := hmac.New(sha512.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// MAC returns HMAC-SHA512(key, msg): the MAC of every reply,
// sub-request and sub-reply item (§6.1, §7.2, §7.3).
func MAC(key, msg []byte) []byte { return computeMAC(key, msg) }

// macHeader is the shared shape of a reply header (Y1‖Y2‖Y3), a sub-request
// header (Q1‖Q2) and a sub-reply header (A1‖A2): optional u32 prefix, field
// block, MAC over both.
type macHeader struct {
	signed []byte // prefix‖field block, as received or encoded
	fields Fields
	mac    []byte
}

func newMACHeader(prefix []byte, fields Fields, key []byte) (macHeader, error) {
	signed, err := fields.AppendBinary(slices.Clone(prefix))
	if err != nil {
		return macHeader{}, err
	}
	return macHeader{signed: signed, fields: fields.Clone(), mac: computeMAC(key, signed)}, nil
}

// readMACHeader reads prefixLen bytes, a field block and a MAC. io.EOF if r
// ends before the first byte, io.ErrUnexpectedEOF inside.
func readMACHeader(r io.Reader, prefixLen int, item string) (macHeader, error) {
	var h macHeader
	prefix := make([]byte, prefixLen)
	if prefixLen > 0 {
		if _, err := io.ReadFull(r, prefix); err != nil {
			if err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("protocol: %s ends inside the code: %w", item, err)
			}
			return h, err
		}
	}
	f, raw, err := ReadFields(r)
	if err != nil {
		if err == io.EOF {
			if prefixLen == 0 {
				return h, io.EOF
			}
			if binary.BigEndian.Uint32(prefix) == uint32(CodeUnknownVersion) {
				// §9: a server that refuses the request version sends
				// the bare code 1 and closes.
				return h, fmt.Errorf("%w: the server sent the bare UNKNOWN_VERSION code and closed (§9)", ErrUnknownVersion)
			}
			err = fmt.Errorf("protocol: %s ends after the code: %w", item, io.ErrUnexpectedEOF)
		}
		return h, fmt.Errorf("protocol: %s: %w", item, err)
	}
	mac := make([]byte, macSize)
	if _, err := io.ReadFull(r, mac); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("protocol: %s ends inside its MAC: %w", item, io.ErrUnexpectedEOF)
		}
		return h, err
	}
	h.signed = append(prefix, raw...)
	h.fields = f
	h.mac = mac
	return h, nil
}

func (h *macHeader) verify(key []byte, what string) error {
	if !hmac.Equal(computeMAC(key, h.signed), h.mac) {
		return &IntegrityError{What: what}
	}
	return nil
}

func (h *macHeader) bytes() []byte {
	b := make([]byte, 0, len(h.signed)+len(h.mac))
	return append(append(b, h.signed...), h.mac...)
}

// ReplyHeader is Y1 (code), Y2 (field block) and Y3 (their MAC) (§6.1).
// A decoded header keeps Y1‖Y2 as received.
type ReplyHeader struct {
	h macHeader
}

// newReplyHeader builds a reply header and computes Y3 with key (the
// request's header-auth-key). It refuses fields that do not encode.
func newReplyHeader(code ErrorCode, fields Fields, key []byte) (*ReplyHeader, error) {
	h, err := newMACHeader(binary.BigEndian.AppendUint32(nil, uint32(code)), fields, key)
	if err != nil {
		return nil, err
	}
	return &ReplyHeader{h: h}, nil
}

// WriteUnknownVersion sends the server's answer to a request whose
// version is not 1 (§4.3 step 1, §9): the inner EOF marker, then the bare
// u32 00 00 00 01 in its own outer chunk, with no fields, MAC or payload.
// The caller then closes the connection. Behind a validating bridge this
// is unreachable.
func WriteUnknownVersion(m *Mux) error {
	if err := m.InnerConn().closeWrite(); err != nil {
		return err
	}
	return m.ChunkWriter().WriteChunk(Outer, binary.BigEndian.AppendUint32(nil, uint32(CodeUnknownVersion)))
}

// ReadReplyHeader reads Y1, Y2 and Y3 from r and verifies Y3 with key
// (constant-time). A MAC that does not verify gives an *IntegrityError
// (ErrIntegrity): then nothing in the header may be trusted. It returns
// io.EOF if r ends before the first byte, an error wrapping
// io.ErrUnexpectedEOF inside the header, and refuses a malformed field
// block. The bare code 1 followed by the end of the stream, a server's
// answer to an unknown request version (§9), gives an error wrapping
// ErrUnknownVersion.
func ReadReplyHeader(r io.Reader, key []byte) (*ReplyHeader, error) {
	h, err := ReadRelayReplyHeader(r)
	if err != nil {
		return nil, err
	}
	if err := h.Verify(key); err != nil {
		return nil, err
	}
	return h, nil
}

// ReadRelayReplyHeader reads Y1, Y2 and Y3 without verifying Y3, for the
// bridge, which has no key and forwards the header unchanged (§4.2 step
// 10). It refuses what ReadReplyHeader refuses except the MAC check.
func ReadRelayReplyHeader(r io.Reader) (*ReplyHeader, error) {
	h, err := readMACHeader(r, 4, "reply header")
	if err != nil {
		return nil, err
	}
	return &ReplyHeader{h: h}, nil
}

// Verify checks Y3 against key in constant time and returns an
// *IntegrityError if it does not match.
func (h *ReplyHeader) Verify(key []byte) error { return h.h.verify(key, "reply header MAC") }

// Code returns Y1.
func (h *ReplyHeader) Code() ErrorCode { return ErrorCode(binary.BigEndian.Uint32(h.h.signed)) }

// Fields returns a copy of Y2.
func (h *ReplyHeader) Fields() Fields { return h.h.fields.Clone() }

// Message returns the message field (§6.4), or "" if it is absent or not a
// safe string.
func (h *ReplyHeader) Message() string {
	s, _ := h.h.fields.Str(FieldMessage)
	return s
}

// Err returns nil for CodeOK and a *ReplyError otherwise.
func (h *ReplyHeader) Err() error {
	if h.Code() == CodeOK {
		return nil
	}
	return &ReplyError{Code: h.Code(), Message: h.Message()}
}

// signed returns a copy of Y1‖Y2, the bytes Y3 covers.
func (h *ReplyHeader) signed() []byte { return slices.Clone(h.h.signed) }

// MAC returns a copy of Y3.
func (h *ReplyHeader) MAC() []byte { return slices.Clone(h.h.mac) }

// Bytes returns Y1‖Y2‖Y3 as they go on the wire.
func (h *ReplyHeader) Bytes() []byte { return h.h.bytes() }

// PayloadReader reads one payload section: a u64 length, that many payload
// bytes, and a 64-byte MAC (Y4-Y6 of a reply, Q3-Q5 of a sub-request, A3-A5
// of a sub-reply). The payload is streamed, never buffered whole.
//
// A verifying reader (NewPayloadReader) returns io.EOF only after the MAC
// has been read and has verified; if it does not, the final Read returns an
// *IntegrityError instead, after the whole section has been consumed, so a
// caller that tolerates an unauthenticated payload (§7.6 step 3) can go on
// reading the stream. A relay reader (NewRelayPayloadReader) does not check
// the MAC and keeps it for forwarding.
type PayloadReader struct {
	r         io.Reader
	n         uint64
	remaining uint64
	mac       hash.Hash // nil for relay readers
	what      string
	got       []byte // the MAC read from the wire
	done      bool
	err       error // final result, returned after the payload
}

// NewPayloadReader reads the u64 length from r and returns a reader of the
// payload that verifies its MAC with key. It refuses a length above maxLen
// (a *LimitError, before reading any payload), an empty key, and a stream
// that ends inside the length (io.ErrUnexpectedEOF). what names the section
// in errors, e.g. "reply payload".
func NewPayloadReader(r io.Reader, key []byte, maxLen uint64, what string) (*PayloadReader, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("protocol: %s: no MAC key given (use NewRelayPayloadReader to read without verifying)", what)
	}
	p, err := newPayloadReader(r, maxLen, what)
	if err != nil {
		return nil, err
	}
	p.mac = hmac.New(sha512.New, key)
	return p, nil
}

// NewRelayPayloadReader is NewPayloadReader without a key: the MAC is read
// but not checked, and MAC returns it for forwarding (§4.2 step 11, §7.7).
// It also serves the one place a client must ignore a MAC on purpose, the
// koji-only case of §6.5.
func NewRelayPayloadReader(r io.Reader, maxLen uint64, what string) (*PayloadReader, error) {
	return newPayloadReader(r, maxLen, what)
}

func newPayloadReader(r io.Reader, maxLen uint64, what string) (*PayloadReader, error) {
	var l [8]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("protocol: %s ends inside its length: %w", what, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint64(l[:])
	if n > maxLen {
		return nil, &LimitError{What: what + " length", Value: n, Limit: maxLen}
	}
	return &PayloadReader{r: r, n: n, remaining: n, what: what}, nil
}

// Len returns the payload length from the wire.
func (p *PayloadReader) Len() uint64 { return p.n }

// Remaining returns how many payload bytes are still unread.
func (p *PayloadReader) Remaining() uint64 { return p.remaining }

// Read reads payload bytes; see the type comment for what the end means.
// A stream that ends inside the payload or the MAC gives an error wrapping
// io.ErrUnexpectedEOF.
func (p *PayloadReader) Read(b []byte) (int, error) {
	if p.remaining == 0 {
		if !p.done {
			p.finish()
		}
		return 0, p.err
	}
	if len(b) == 0 {
		return 0, nil
	}
	if uint64(len(b)) > p.remaining {
		b = b[:p.remaining]
	}
	n, err := p.r.Read(b)
	if p.mac != nil {
		p.mac.Write(b[:n])
	}
	p.remaining -= uint64(n)
	if err == io.EOF && p.remaining > 0 {
		p.done, p.err = true, fmt.Errorf("protocol: %s ends after %d of %d bytes: %w", p.what, p.n-p.remaining, p.n, io.ErrUnexpectedEOF)
		p.remaining = 0
		return n, p.err
	}
	if err != nil && err != io.EOF {
		return n, err
	}
	return n, nil
}

func (p *PayloadReader) finish() {
	p.done = true
	got := make([]byte, macSize)
	if _, err := io.ReadFull(p.r, got); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("protocol: %s ends inside its MAC: %w", p.what, io.ErrUnexpectedEOF)
		}
		p.err = err
		return
	}
	p.got = got
	p.err = io.EOF
	if p.mac != nil && !hmac.Equal(p.mac.Sum(nil), got) {
		p.err = &IntegrityError{What: p.what + " MAC"}
	}
}

// Finish reads and discards whatever is left of the section, including the
// MAC, and returns nil if the MAC verified (or was not checked), an
// *IntegrityError if it did not, or the read error.
func (p *PayloadReader) Finish() error {
	_, err := io.Copy(io.Discard, p)
	if err != nil {
		return err
	}
	return nil
}

// MAC returns the MAC read from the wire, or nil before the whole section
// has been read.
func (p *PayloadReader) MAC() []byte { return slices.Clone(p.got) }

// verified reports whether the whole section has been read and its MAC
// verified. It is always false for relay readers.
func (p *PayloadReader) verified() bool { return p.done && p.mac != nil && p.err == io.EOF }

// writePayload writes a payload section: u64 n, exactly n bytes copied
// from data, and HMAC-SHA512(key, data). It returns an error wrapping
// io.ErrUnexpectedEOF if data has fewer than n bytes; the stream is then
// corrupt and the connection must be dropped. data may be nil when n is 0.
func writePayload(w io.Writer, key []byte, n uint64, data io.Reader) error {
	if n > math.MaxInt64 {
		return &LimitError{What: "payload length", Value: n, Limit: math.MaxInt64}
	}
	m := hmac.New(sha512.New, key)
	if _, err := w.Write(binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return err
	}
	if n > 0 {
		if data == nil {
			return fmt.Errorf("protocol: payload of %d bytes but no data reader", n)
		}
		k, err := io.CopyN(io.MultiWriter(w, m), data, int64(n))
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("protocol: payload source ended after %d of %d bytes: %w", k, n, io.ErrUnexpectedEOF)
			}
			return err
		}
	}
	_, err := w.Write(m.Sum(nil))
	return err
}

// WriteReply writes a complete reply: Y1‖Y2‖Y3 in one Write, then the
// payload section (Y4-Y6) with writePayload. Servers MUST send Y4-Y6 after
// every header, including error replies (§6.1): pass n = 0 and a nil
// payload then. It refuses fields that do not encode.
func WriteReply(w io.Writer, keys ReplyKeys, code ErrorCode, fields Fields, n uint64, payload io.Reader) error {
	h, err := newReplyHeader(code, fields, keys.Header)
	if err != nil {
		return err
	}
	if _, err := w.Write(h.Bytes()); err != nil {
		return err
	}
	return writePayload(w, keys.Payload, n, payload)
}

// encodeReply returns the bytes of a complete reply with an in-memory
// payload (Y1..Y6).
func encodeReply(keys ReplyKeys, code ErrorCode, fields Fields, payload []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := WriteReply(&b, keys, code, fields, uint64(len(payload)), bytes.NewReader(payload)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ReadReply reads and verifies a complete reply whose payload fits in
// memory: the header (refused with ErrIntegrity if Y3 fails), then a
// payload of at most maxPayload bytes (refused before allocating if
// longer), then Y6 (ErrIntegrity if it fails; the payload is then not
// returned).
func ReadReply(r io.Reader, keys ReplyKeys, maxPayload uint64) (*ReplyHeader, []byte, error) {
	h, err := ReadReplyHeader(r, keys.Header)
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("protocol: connection ended before the reply: %w", io.ErrUnexpectedEOF)
		}
		return nil, nil, err
	}
	p, err := NewPayloadReader(r, keys.Payload, maxPayload, "reply payload")
	if err != nil {
		return h, nil, err
	}
	data, err := readAllPayload(p)
	if err != nil {
		return h, nil, err
	}
	return h, data, nil
}

// readAllPayload reads a whole payload section whose length the caller has
// already bounded.
func readAllPayload(p *PayloadReader) ([]byte, error) {
	if p.Len() > math.MaxInt32 {
		return nil, &LimitError{What: p.what + " length held in memory", Value: p.Len(), Limit: math.MaxInt32}
	}
	data := make([]byte, int(p.Len()))
	if _, err := io.ReadFull(p, data); err != nil {
		return nil, err
	}
	if err := p.Finish(); err != nil {
		return nil, err
	}
	return data, nil
}
