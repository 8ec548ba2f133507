package protocol

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
)

// SubKeys are the four sign-rpms base keys of §7.4, sent in the inner
// message (§5.2). forIndex derives the per-item keys from them.
type SubKeys struct {
	RequestHeader  []byte // subrequest-header-auth-key: K^reqH
	RequestPayload []byte // subrequest-payload-auth-key: K^reqP
	ReplyHeader    []byte // subreply-header-auth-key: K^repH
	ReplyPayload   []byte // subreply-payload-auth-key: K^repP
}

func (k SubKeys) named() []struct {
	k string
	v []byte
} {
	return []struct {
		k string
		v []byte
	}{
		{fieldSubRequestHeaderAuthKey, k.RequestHeader},
		{fieldSubRequestPayloadAuthKey, k.RequestPayload},
		{fieldSubReplyHeaderAuthKey, k.ReplyHeader},
		{fieldSubReplyPayloadAuthKey, k.ReplyPayload},
	}
}

// Zero overwrites the keys with zeros.
func (k SubKeys) Zero() {
	clear(k.RequestHeader)
	clear(k.RequestPayload)
	clear(k.ReplyHeader)
	clear(k.ReplyPayload)
}

// deriveSubKey returns K_n = SHA-512(00 00 00 01 ‖ base ‖ u32be(n)), the
// HMAC key for sub-request or sub-reply number n (§7.4). The same formula
// serves all four families (the design note's different sub-reply formula
// is wrong, §13).
func deriveSubKey(base []byte, n uint32) []byte {
	h := sha512.New()
	h.Write([]byte{0, 0, 0, 1})
	h.Write(base)
	h.Write(binary.BigEndian.AppendUint32(nil, n))
	return h.Sum(nil)
}

// forIndex returns the four keys derived for item number n.
func (k SubKeys) forIndex(n uint32) SubKeys {
	return SubKeys{
		RequestHeader:  deriveSubKey(k.RequestHeader, n),
		RequestPayload: deriveSubKey(k.RequestPayload, n),
		ReplyHeader:    deriveSubKey(k.ReplyHeader, n),
		ReplyPayload:   deriveSubKey(k.ReplyPayload, n),
	}
}

// BridgeMaxSubRequestPayload is the bridge's limit on one sub-request
// payload (§7.7, §7.11).
const BridgeMaxSubRequestPayload = 1 << 40

// SubRequestHeader is Q1 (field block) and Q2 (its MAC) of a sign-rpms
// sub-request (§7.2). A decoded header keeps Q1 as received.
type SubRequestHeader struct {
	h macHeader
}

// newSubRequestHeader builds Q1‖Q2 with the derived key K^reqH_n. It
// refuses fields without id and fields that do not encode.
func newSubRequestHeader(fields Fields, key []byte) (*SubRequestHeader, error) {
	if !fields.Has(FieldID) {
		return nil, &FieldError{Key: FieldID, Err: ErrMissingField, Reason: "required in every sub-request (§7.2)"}
	}
	h, err := newMACHeader(nil, fields, key)
	if err != nil {
		return nil, err
	}
	return &SubRequestHeader{h: h}, nil
}

// readSubRequestHeader reads Q1 and Q2 and verifies Q2 with the derived key
// (constant-time); a mismatch is an *IntegrityError. It returns io.EOF if r
// ends before the first byte (no more sub-requests), an error wrapping
// io.ErrUnexpectedEOF inside, and refuses a malformed block or one without
// id.
func readSubRequestHeader(r io.Reader, key []byte) (*SubRequestHeader, error) {
	h, err := ReadRelaySubRequestHeader(r)
	if err != nil {
		return nil, err
	}
	if err := h.Verify(key); err != nil {
		return nil, err
	}
	return h, nil
}

// ReadRelaySubRequestHeader reads Q1 and Q2 without checking Q2, for the
// bridge (§7.7). It refuses what readSubRequestHeader refuses except the
// MAC check.
func ReadRelaySubRequestHeader(r io.Reader) (*SubRequestHeader, error) {
	h, err := readMACHeader(r, 0, "sub-request header")
	if err != nil {
		return nil, err
	}
	if !h.fields.Has(FieldID) {
		return nil, &FieldError{Key: FieldID, Err: ErrMissingField, Reason: "required in every sub-request (§7.2)"}
	}
	return &SubRequestHeader{h: h}, nil
}

// Verify checks Q2 against key in constant time.
func (h *SubRequestHeader) Verify(key []byte) error {
	return h.h.verify(key, "sub-request header MAC")
}

// Fields returns a copy of Q1's fields.
func (h *SubRequestHeader) Fields() Fields { return h.h.fields.Clone() }

// ID returns a copy of the id field.
func (h *SubRequestHeader) ID() []byte {
	v, _ := h.h.fields.Lookup(FieldID)
	return slices.Clone(v)
}

// signed returns a copy of Q1, the bytes Q2 covers.
func (h *SubRequestHeader) signed() []byte { return slices.Clone(h.h.signed) }

// MAC returns a copy of Q2.
func (h *SubRequestHeader) MAC() []byte { return slices.Clone(h.h.mac) }

// Bytes returns Q1‖Q2 as they go on the wire.
func (h *SubRequestHeader) Bytes() []byte { return h.h.bytes() }

// SubReplyHeader is A1 (field block) and A2 (its MAC) of a sign-rpms
// sub-reply (§7.3).
type SubReplyHeader struct {
	h macHeader
}

// SubReplyFields returns the fields of a sub-reply in the reference order:
// id (a copy of the sub-request's id) and status. It refuses an id longer
// than maxValueLen.
func SubReplyFields(id []byte, status ErrorCode) (Fields, error) {
	var f Fields
	if err := f.Set(FieldID, id); err != nil {
		return nil, err
	}
	if err := f.SetU32(fieldStatus, uint32(status)); err != nil {
		return nil, err
	}
	return f, nil
}

// newSubReplyHeader builds A1‖A2 with the derived key K^repH_n. It refuses
// fields without id or without a 4-byte status, and fields that do not
// encode.
func newSubReplyHeader(fields Fields, key []byte) (*SubReplyHeader, error) {
	if err := checkSubReplyFields(fields); err != nil {
		return nil, err
	}
	h, err := newMACHeader(nil, fields, key)
	if err != nil {
		return nil, err
	}
	return &SubReplyHeader{h: h}, nil
}

func checkSubReplyFields(f Fields) error {
	if !f.Has(FieldID) {
		return &FieldError{Key: FieldID, Err: ErrMissingField, Reason: "required in every sub-reply (§7.3)"}
	}
	_, err := f.U32(fieldStatus)
	return err
}

// readSubReplyHeader reads A1 and A2 and verifies A2 with the derived key
// (constant-time); a mismatch is an *IntegrityError. It returns io.EOF if r
// ends before the first byte (no more sub-replies), an error wrapping
// io.ErrUnexpectedEOF inside, and refuses a malformed block and one
// without id or a 4-byte status.
func readSubReplyHeader(r io.Reader, key []byte) (*SubReplyHeader, error) {
	h, err := readMACHeader(r, 0, "sub-reply header")
	if err != nil {
		return nil, err
	}
	sh := &SubReplyHeader{h: h}
	if err := sh.Verify(key); err != nil {
		return nil, err
	}
	if err := checkSubReplyFields(h.fields); err != nil {
		return nil, err
	}
	return sh, nil
}

// ReadRelaySubReplyHeader reads A1 and A2 without checking A2, for the
// bridge (§7.7). It refuses what readSubReplyHeader refuses except the MAC
// check.
func ReadRelaySubReplyHeader(r io.Reader) (*SubReplyHeader, error) {
	h, err := readMACHeader(r, 0, "sub-reply header")
	if err != nil {
		return nil, err
	}
	if err := checkSubReplyFields(h.fields); err != nil {
		return nil, err
	}
	return &SubReplyHeader{h: h}, nil
}

// Verify checks A2 against key in constant time.
func (h *SubReplyHeader) Verify(key []byte) error { return h.h.verify(key, "sub-reply header MAC") }

// Fields returns a copy of A1's fields.
func (h *SubReplyHeader) Fields() Fields { return h.h.fields.Clone() }

// ID returns a copy of the id field.
func (h *SubReplyHeader) ID() []byte {
	v, _ := h.h.fields.Lookup(FieldID)
	return slices.Clone(v)
}

// Status returns the status field.
func (h *SubReplyHeader) Status() ErrorCode {
	s, _ := h.h.fields.U32(fieldStatus)
	return ErrorCode(s)
}

// Message returns the message field, or "" if absent or not a safe string.
func (h *SubReplyHeader) Message() string {
	s, _ := h.h.fields.Str(FieldMessage)
	return s
}

// Err returns nil for status 0 and a *ReplyError otherwise.
func (h *SubReplyHeader) Err() error {
	if h.Status() == CodeOK {
		return nil
	}
	return &ReplyError{Code: h.Status(), Message: h.Message()}
}

// signed returns a copy of A1, the bytes A2 covers.
func (h *SubReplyHeader) signed() []byte { return slices.Clone(h.h.signed) }

// MAC returns a copy of A2.
func (h *SubReplyHeader) MAC() []byte { return slices.Clone(h.h.mac) }

// Bytes returns A1‖A2 as they go on the wire.
func (h *SubReplyHeader) Bytes() []byte { return h.h.bytes() }

// encodeSubRequest returns the bytes of sub-request number n (Q1..Q5) with
// an in-memory payload, keyed with keys.forIndex(n).
func encodeSubRequest(keys SubKeys, n uint32, fields Fields, payload []byte) ([]byte, error) {
	d := keys.forIndex(n)
	h, err := newSubRequestHeader(fields, d.RequestHeader)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(h.Bytes())
	if err := writePayload(&b, d.RequestPayload, uint64(len(payload)), bytes.NewReader(payload)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encodeSubReply returns the bytes of sub-reply number n (A1..A5) with an
// in-memory payload, keyed with keys.forIndex(n).
func encodeSubReply(keys SubKeys, n uint32, fields Fields, payload []byte) ([]byte, error) {
	d := keys.forIndex(n)
	h, err := newSubReplyHeader(fields, d.ReplyHeader)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(h.Bytes())
	if err := writePayload(&b, d.ReplyPayload, uint64(len(payload)), bytes.NewReader(payload)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// counter hands out the numbers 0, 1, ... of §7.5 and refuses to wrap.
type counter struct {
	next uint32
	full bool
}

func (c *counter) take(what string) (uint32, error) {
	if c.full {
		return 0, &LimitError{What: what + " count", Value: math.MaxUint32 + 1, Limit: math.MaxUint32}
	}
	n := c.next
	if n == math.MaxUint32 {
		c.full = true
	} else {
		c.next++
	}
	return n, nil
}

// SubRequestWriter writes a client's sub-requests, numbering them 0, 1, ...
// in the order written (§7.5) and keying each with its derived keys. It is
// not safe for concurrent use; one goroutine writes sub-requests while
// another reads sub-replies (§7.12).
type SubRequestWriter struct {
	w    io.Writer
	keys SubKeys
	c    counter
}

// NewSubRequestWriter returns a writer of sub-requests to w (the client's
// outer StreamWriter) with the base keys keys.
func NewSubRequestWriter(w io.Writer, keys SubKeys) *SubRequestWriter {
	return &SubRequestWriter{w: w, keys: keys}
}

// Write writes the next sub-request: Q1‖Q2 (one Write), then u64 n, n
// bytes from payload and Q5. It returns the sub-request's number. It
// refuses fields without id, and a payload with fewer than n bytes (the
// stream is then corrupt). After the last sub-request, close the outer
// stream (§7.1 step 4).
func (s *SubRequestWriter) Write(fields Fields, n uint64, payload io.Reader) (uint32, error) {
	return writeSubItem(s.w, &s.c, "sub-request", func(d SubKeys) ([]byte, []byte, error) {
		h, err := newSubRequestHeader(fields, d.RequestHeader)
		if err != nil {
			return nil, nil, err
		}
		return h.Bytes(), d.RequestPayload, nil
	}, s.keys, n, payload)
}

// writeSubItem writes the next numbered sub-request or sub-reply: its
// header as made by header from the item's derived keys (one Write), then
// u64 n, n bytes from payload and the payload MAC under the key header
// returned. The number is taken only once the header is valid.
func writeSubItem(w io.Writer, c *counter, what string, header func(SubKeys) (hdr, payloadKey []byte, err error), keys SubKeys, n uint64, payload io.Reader) (uint32, error) {
	seq := c.next
	if c.full {
		_, err := c.take(what)
		return 0, err
	}
	hdr, pkey, err := header(keys.forIndex(seq))
	if err != nil {
		return 0, err
	}
	if _, err := c.take(what); err != nil {
		return 0, err
	}
	if _, err := w.Write(hdr); err != nil {
		return seq, err
	}
	return seq, writePayload(w, pkey, n, payload)
}

// SubReplyIndexing says which sub-replies advance the sub-reply index n
// that keys each sub-reply (§7.5, §7.9 item 6). The two Sigul 1.2
// programs disagree on it.
type SubReplyIndexing int

const (
	// IndexEveryReply advances n after every sub-reply, whatever its
	// status: what the 1.2 server does.
	IndexEveryReply SubReplyIndexing = iota
	// IndexOKReplies advances n only after a sub-reply with status 0, so
	// n is the number of successful sub-replies before this one: what
	// the unmodified 1.2 client expects, and what signet's server sends.
	IndexOKReplies
)

func (x SubReplyIndexing) String() string {
	if x == IndexOKReplies {
		return "index advanced after OK sub-replies only"
	}
	return "index advanced after every sub-reply"
}

// SubReplyWriter writes a server's sub-replies, keying each with the index
// its indexing rule gives (§7.5, §7.9 item 6).
type SubReplyWriter struct {
	w        io.Writer
	keys     SubKeys
	c        counter
	indexing SubReplyIndexing
}

// NewSubReplyWriter returns a writer of sub-replies to w with the base keys
// keys, numbering every sub-reply 0, 1, ... whatever its status, as the
// 1.2 server does (IndexEveryReply).
func NewSubReplyWriter(w io.Writer, keys SubKeys) *SubReplyWriter {
	return &SubReplyWriter{w: w, keys: keys}
}

// NewSubReplyWriterIndexed is NewSubReplyWriter with the given indexing
// rule. A server that must serve the unmodified 1.2 client uses
// IndexOKReplies: a failed sub-reply is keyed with the same index as the
// sub-reply after it.
func NewSubReplyWriterIndexed(w io.Writer, keys SubKeys, indexing SubReplyIndexing) *SubReplyWriter {
	return &SubReplyWriter{w: w, keys: keys, indexing: indexing}
}

// Write writes the next sub-reply: A1‖A2 (one Write), then u64 n, n bytes
// from payload and A5, and returns the index it was keyed with. A failed
// RPM gets a sub-reply with its status and n = 0 (§7.3, §7.12). It refuses
// fields without id or a 4-byte status.
func (s *SubReplyWriter) Write(fields Fields, n uint64, payload io.Reader) (uint32, error) {
	if s.indexing == IndexOKReplies {
		if st, err := fields.U32(fieldStatus); err == nil && ErrorCode(st) != CodeOK {
			// Keyed with the current index, which is not used up.
			c := s.c
			return writeSubItem(s.w, &c, "sub-reply", s.header(fields), s.keys, n, payload)
		}
	}
	return writeSubItem(s.w, &s.c, "sub-reply", s.header(fields), s.keys, n, payload)
}

func (s *SubReplyWriter) header(fields Fields) func(SubKeys) ([]byte, []byte, error) {
	return func(d SubKeys) ([]byte, []byte, error) {
		h, err := newSubReplyHeader(fields, d.ReplyHeader)
		if err != nil {
			return nil, nil, err
		}
		return h.Bytes(), d.ReplyPayload, nil
	}
}

// SubRequest is one sub-request as read by a SubRequestReader.
type SubRequest struct {
	Seq     uint32 // n of §7.5
	Header  *SubRequestHeader
	Payload *PayloadReader // verifying reader of Q3..Q5
}

// SubReply is one sub-reply as read by a SubReplyReader.
type SubReply struct {
	Seq     uint32
	Header  *SubReplyHeader
	Payload *PayloadReader // verifying reader of A3..A5
}

// SubRequestReader reads the server's sub-requests in order, verifying each
// with the keys derived for its number.
type SubRequestReader struct {
	r      io.Reader
	keys   SubKeys
	max    uint64
	c      counter
	cur    *PayloadReader
	failed error
}

// NewSubRequestReader returns a reader of sub-requests from r with the base
// keys keys, refusing payloads longer than maxPayload (the server's
// max-file-payload-size, §7.6 step 2).
func NewSubRequestReader(r io.Reader, keys SubKeys, maxPayload uint64) *SubRequestReader {
	return &SubRequestReader{r: r, keys: keys, max: maxPayload}
}

// Next reads the next sub-request header and returns it with a reader of
// its payload. Whatever the caller left unread of the previous payload is
// read and discarded first. It returns io.EOF at a clean end of the stream
// between sub-requests (the bridge's outer EOF). A header MAC that does not
// verify or a missing id is a protocol error (§7.6 step 1): the error is
// returned and every later call returns it again. The payload MAC is
// checked when the payload has been read: its *IntegrityError only means
// "payload not authenticated" (§7.6 step 3) and the stream stays usable.
func (s *SubRequestReader) Next() (*SubRequest, error) {
	if s.failed != nil {
		return nil, s.failed
	}
	if err := drainPrev(s.cur); err != nil {
		s.failed = err
		return nil, err
	}
	s.cur = nil
	seq := s.c.next
	if s.c.full {
		_, s.failed = s.c.take("sub-request")
		return nil, s.failed
	}
	d := s.keys.forIndex(seq)
	h, err := readSubRequestHeader(s.r, d.RequestHeader)
	if err != nil {
		if err != io.EOF {
			err = wrapSeq(err, "sub-request", seq)
		}
		s.failed = err
		return nil, err
	}
	s.c.take("sub-request")
	p, err := NewPayloadReader(s.r, d.RequestPayload, s.max, fmt.Sprintf("sub-request %d payload", seq))
	if err != nil {
		s.failed = err
		return nil, err
	}
	s.cur = p
	return &SubRequest{Seq: seq, Header: h, Payload: p}, nil
}

// SubReplyReader reads a client's sub-replies in order, verifying each with
// the keys derived for its index. It accepts both conventions of §7.9 item
// 6: while no sub-reply has failed they agree; at the first sub-reply
// after a failed one, the header is checked with the index counting only
// OK sub-replies and then with the one counting every sub-reply, and the
// rule that verified is kept for the rest of the stream. Both keys are
// secret to the bridge, so accepting either adds no forgery path.
type SubReplyReader struct {
	r        io.Reader
	keys     SubKeys
	max      uint64
	c        counter // every sub-reply read
	ok       uint32  // sub-replies read with status 0
	indexing SubReplyIndexing
	decided  bool
	cur      *PayloadReader
	failed   error
}

// NewSubReplyReader returns a reader of sub-replies from r with the base
// keys keys, refusing payloads longer than maxPayload.
func NewSubReplyReader(r io.Reader, keys SubKeys, maxPayload uint64) *SubReplyReader {
	return &SubReplyReader{r: r, keys: keys, max: maxPayload}
}

// Indexing returns the server's indexing rule, and whether the stream has
// shown it yet (it shows only after a failed sub-reply).
func (s *SubReplyReader) Indexing() (SubReplyIndexing, bool) { return s.indexing, s.decided }

// Next reads the next sub-reply header, verified, and returns it with a
// verifying reader of its payload. Whatever the caller left unread of the
// previous payload is read and discarded first. It returns io.EOF at a
// clean end of the stream between sub-replies (§7.9 step 1). A header that
// fails its MAC under every index it may have, or lacks id or a 4-byte
// status, is an error after which every call fails. The payload's MAC
// error, if any, is returned by its final Read; for a successful sub-reply
// with return-data false the client must instead require Len() == 0 and
// ignore the MAC (§6.5). SubReply.Seq is the position of the sub-reply on
// the wire, whatever index keyed it.
func (s *SubReplyReader) Next() (*SubReply, error) {
	if s.failed != nil {
		return nil, s.failed
	}
	if err := drainPrev(s.cur); err != nil && !isIntegrity(err) {
		s.failed = err
		return nil, err
	}
	s.cur = nil
	seq := s.c.next
	if s.c.full {
		_, s.failed = s.c.take("sub-reply")
		return nil, s.failed
	}
	h, idx, err := s.readHeader(seq)
	if err != nil {
		if err != io.EOF {
			err = wrapSeq(err, "sub-reply", seq)
		}
		s.failed = err
		return nil, err
	}
	s.c.take("sub-reply")
	if h.Status() == CodeOK {
		s.ok++
	}
	p, err := NewPayloadReader(s.r, deriveSubKey(s.keys.ReplyPayload, idx), s.max, fmt.Sprintf("sub-reply %d payload", seq))
	if err != nil {
		s.failed = err
		return nil, err
	}
	s.cur = p
	return &SubReply{Seq: seq, Header: h, Payload: p}, nil
}

// readHeader reads A1‖A2 of the sub-reply at position seq and verifies A2
// under the index or indexes it may have; it returns the index that
// verified.
func (s *SubReplyReader) readHeader(seq uint32) (*SubReplyHeader, uint32, error) {
	mh, err := readMACHeader(s.r, 0, "sub-reply header")
	if err != nil {
		return nil, 0, err
	}
	h := &SubReplyHeader{h: mh}
	cand := []uint32{seq}
	rules := []SubReplyIndexing{IndexEveryReply}
	switch {
	case s.ok == seq:
		// No failure yet: both rules give the same index.
	case s.decided && s.indexing == IndexOKReplies:
		cand, rules = []uint32{s.ok}, []SubReplyIndexing{IndexOKReplies}
	case !s.decided:
		cand, rules = []uint32{s.ok, seq}, []SubReplyIndexing{IndexOKReplies, IndexEveryReply}
	}
	var first error
	for i, n := range cand {
		err := h.Verify(deriveSubKey(s.keys.ReplyHeader, n))
		if err == nil {
			// The fields are looked at only once the MAC verified.
			if err := checkSubReplyFields(mh.fields); err != nil {
				return nil, 0, err
			}
			if len(cand) > 1 {
				s.indexing, s.decided = rules[i], true
			}
			return h, n, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, 0, first
}

func isIntegrity(err error) bool {
	_, ok := err.(*IntegrityError)
	return ok
}

// drainPrev finishes a previous payload section; a MAC mismatch there is
// not a reason to stop (sub-request payloads, §7.6 step 3).
func drainPrev(p *PayloadReader) error {
	if p == nil {
		return nil
	}
	if err := p.Finish(); err != nil && !isIntegrity(err) {
		return err
	}
	return nil
}

// seqError adds the item number to an error while keeping it matchable
// with errors.Is and errors.As.
type seqError struct {
	item string
	seq  uint32
	err  error
}

func (e *seqError) Error() string { return fmt.Sprintf("%s %d: %v", e.item, e.seq, e.err) }
func (e *seqError) Unwrap() error { return e.err }

func wrapSeq(err error, item string, seq uint32) error {
	return &seqError{item: item, seq: seq, err: err}
}
