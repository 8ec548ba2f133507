package protocol

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
)

// protocolVersion is the only request version of Sigul protocol 1 (§9).
const protocolVersion uint32 = 1

// Names of the fields this package itself interprets.
const (
	FieldOp      = "op"
	FieldUser    = "user"
	FieldMessage = "message"
	FieldID      = "id"
	fieldStatus  = "status"

	fieldHeaderAuthSHA512  = "header-auth-sha512"
	fieldPayloadAuthSHA512 = "payload-auth-sha512"
	fieldHeaderAuthKey     = "header-auth-key"
	fieldPayloadAuthKey    = "payload-auth-key"

	fieldSubRequestHeaderAuthKey  = "subrequest-header-auth-key"
	fieldSubRequestPayloadAuthKey = "subrequest-payload-auth-key"
	fieldSubReplyHeaderAuthKey    = "subreply-header-auth-key"
	fieldSubReplyPayloadAuthKey   = "subreply-payload-auth-key"
)

// RequestHeader is the fixed part of a request (§4.1): R1 the protocol
// version, R2 the field block, R3 the payload length. A decoded header keeps
// R1‖R2 exactly as received, because the bridge must forward those bytes
// unchanged and the server hashes them (§4.2 step 7, §5.3).
type RequestHeader struct {
	head       []byte // R1‖R2
	fields     Fields
	payloadLen uint64
}

// NewRequestHeader builds a version-1 request header from fields and the
// payload length P. It refuses fields without op and user as safe strings
// (§4.1) and fields that do not encode (see Fields.Validate). It does not
// check the operation whitelist; see ValidateRequest.
func NewRequestHeader(fields Fields, payloadLen uint64) (*RequestHeader, error) {
	for _, k := range []string{FieldOp, FieldUser} {
		if _, err := fields.Str(k); err != nil {
			return nil, err
		}
	}
	head := binary.BigEndian.AppendUint32(nil, protocolVersion)
	head, err := fields.AppendBinary(head)
	if err != nil {
		return nil, err
	}
	return &RequestHeader{head: head, fields: fields.Clone(), payloadLen: payloadLen}, nil
}

// ReadRequestHeader reads R1, R2 and R3 from r, reading nothing after R3.
// It returns io.EOF if r ends before the first byte and an error wrapping
// io.ErrUnexpectedEOF if it ends inside the header. A version other than 1
// is refused with a *VersionError right after R1, before anything else is
// read (§4.2 step 1, §4.3 step 1). A malformed field block is refused as
// ReadFields does. It does not require op or user, and does not apply
// the whitelist (see ValidateRequest).
func ReadRequestHeader(r io.Reader) (*RequestHeader, error) {
	var v [4]byte
	if _, err := io.ReadFull(r, v[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("protocol: request ends inside the version: %w", err)
		}
		return nil, err
	}
	if ver := binary.BigEndian.Uint32(v[:]); ver != protocolVersion {
		return nil, &VersionError{Version: ver}
	}
	f, raw, err := ReadFields(r)
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("protocol: request ends after the version: %w", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	var l [8]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("protocol: request ends inside the payload length: %w", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	head := make([]byte, 0, 4+len(raw))
	head = append(append(head, v[:]...), raw...)
	return &RequestHeader{head: head, fields: f, payloadLen: binary.BigEndian.Uint64(l[:])}, nil
}

// Version returns R1, always protocolVersion for a header this package
// built or accepted.
func (h *RequestHeader) Version() uint32 { return binary.BigEndian.Uint32(h.head) }

// Fields returns a copy of the field block.
func (h *RequestHeader) Fields() Fields { return h.fields.Clone() }

// Op returns the op field, or "" if it is absent or not a safe string.
func (h *RequestHeader) Op() string {
	s, _ := h.fields.Str(FieldOp)
	return s
}

// User returns the user field, or "" if it is absent or not a safe string.
func (h *RequestHeader) User() string {
	s, _ := h.fields.Str(FieldUser)
	return s
}

// PayloadLen returns R3, the payload length P.
func (h *RequestHeader) PayloadLen() uint64 { return h.payloadLen }

// HeaderBytes returns a copy of R1‖R2, the bytes header-auth-sha512 covers.
func (h *RequestHeader) HeaderBytes() []byte { return slices.Clone(h.head) }

// SHA512 returns SHA-512(R1‖R2), the value of header-auth-sha512 (§5.3).
func (h *RequestHeader) SHA512() []byte {
	s := sha512.Sum512(h.head)
	return s[:]
}

// MarshalBinary returns R1‖R2‖R3. It never fails.
func (h *RequestHeader) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, len(h.head)+8)
	b = append(b, h.head...)
	return binary.BigEndian.AppendUint64(b, h.payloadLen), nil
}

// Payload returns a reader of the request payload R4 that follows the
// header on r: exactly PayloadLen bytes, hashed with SHA-512 as they pass.
func (h *RequestHeader) Payload(r io.Reader) *RequestPayload {
	return &RequestPayload{r: r, remaining: h.payloadLen, n: h.payloadLen, h: sha512.New()}
}

// RequestPayload streams a request payload of known length and computes
// its SHA-512 (§4.3 step 5, §5.3).
type RequestPayload struct {
	r         io.Reader
	remaining uint64
	n         uint64
	h         hash.Hash
	sum       []byte
}

// Read reads payload bytes. It returns io.EOF after exactly the payload
// length and an error wrapping io.ErrUnexpectedEOF if the stream ends
// before that.
func (p *RequestPayload) Read(b []byte) (int, error) {
	if p.remaining == 0 {
		if p.sum == nil {
			p.sum = p.h.Sum(nil)
		}
		return 0, io.EOF
	}
	if len(b) == 0 {
		return 0, nil
	}
	if uint64(len(b)) > p.remaining {
		b = b[:p.remaining]
	}
	n, err := p.r.Read(b)
	p.h.Write(b[:n])
	p.remaining -= uint64(n)
	if err == io.EOF && p.remaining > 0 {
		return n, fmt.Errorf("protocol: request payload ends after %d of %d bytes: %w", p.n-p.remaining, p.n, io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	if p.remaining == 0 && p.sum == nil {
		p.sum = p.h.Sum(nil)
	}
	return n, err
}

// Remaining returns how many payload bytes are still unread.
func (p *RequestPayload) Remaining() uint64 { return p.remaining }

// SHA512 returns SHA-512 of the payload once it has been read completely,
// and nil before.
func (p *RequestPayload) SHA512() []byte {
	if p.remaining == 0 && p.sum == nil {
		p.sum = p.h.Sum(nil)
	}
	return slices.Clone(p.sum)
}

// WriteRequest writes R1‖R2‖R3 (in one Write) and then exactly
// h.PayloadLen() bytes copied from payload, and returns SHA-512 of the
// payload for payload-auth-sha512. It returns an error wrapping
// io.ErrUnexpectedEOF if payload has fewer bytes; the connection must then
// be dropped. payload may be nil when PayloadLen is 0.
func WriteRequest(w io.Writer, h *RequestHeader, payload io.Reader) ([]byte, error) {
	if h.payloadLen > math.MaxInt64 {
		return nil, &LimitError{What: "request payload length", Value: h.payloadLen, Limit: math.MaxInt64}
	}
	b, _ := h.MarshalBinary()
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	sum := sha512.New()
	if h.payloadLen > 0 {
		if payload == nil {
			return nil, fmt.Errorf("protocol: request payload of %d bytes but no payload reader", h.payloadLen)
		}
		n, err := io.CopyN(io.MultiWriter(w, sum), payload, int64(h.payloadLen))
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("protocol: request payload source ended after %d of %d bytes: %w", n, h.payloadLen, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
	}
	return sum.Sum(nil), nil
}
