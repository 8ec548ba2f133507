// This file holds a request and its reply as the handlers see them, the
// refusals that become Sigul reply codes, and the helpers that read
// request fields and build reply fields.

package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server/store"
)

// Request is one request as the handlers see it, after the protocol layer
// has checked its structure, its hashes and its MAC keys.
type Request struct {
	Op   string
	User string
	// CN is the subject CN of the client's inner TLS certificate.
	CN string
	// Fields are the outer fields; Secrets the inner ones (password,
	// passphrase, new-password, new-passphrase, ...).
	Fields  map[string][]byte
	Secrets map[string][]byte
	// Payload is the request payload, PayloadSize bytes; PayloadSHA512
	// its digest (recorded in the audit log), when the caller has it.
	Payload       io.Reader
	PayloadSize   int64
	PayloadSHA512 []byte
	// PayloadAt, when set, reads the same payload at any offset (the
	// connection spools every payload); PayloadAuthenticated says the
	// client sent the payload's hash and it matched (optional for
	// sign-rpm, §7.10).
	PayloadAt            io.ReaderAt
	PayloadAuthenticated bool

	// auditNote is what a handler says of the request, in its audit
	// record, before the change it commits (see noteAudit).
	auditNote string
}

// noteAudit sets what r's audit record says besides its size and digest,
// for a handler that commits a change: the record goes into the change's
// transaction, before the reply (and its Audit) exists.
func (r *Request) noteAudit(format string, args ...any) {
	r.auditNote = fmt.Sprintf(format, args...)
}

// Field is one reply field, in order.
type Field struct {
	Key   string
	Value []byte
}

// Response is a handler's answer: a status, fields and a payload.
type Response struct {
	Status      protocol.ErrorCode
	Fields      []Field
	Payload     io.Reader // closed after sending if it is an io.Closer
	PayloadSize int64
	// Audit is what the audit record says of the request besides its
	// size and digest: what was signed (an RPM's NEVRA and header digest,
	// a PE image's digest, machine and certificate).
	Audit string
	// Batch, set on an OK reply to sign-rpms, serves the sub-phase that
	// follows the reply (§7).
	Batch Batch
}

// Drop is returned when the request must be answered with no reply at all
// (PROTOCOL-v1 §6.6): the connection is closed.
var ErrDrop = errors.New("request dropped")

// refusal is an error reply with a code and, rarely, a message.
type refusal struct {
	status  protocol.ErrorCode
	message string
}

func (r *refusal) Error() string {
	if r.message != "" {
		return fmt.Sprintf("status %d: %s", r.status, r.message)
	}
	return fmt.Sprintf("status %d", r.status)
}

func refuse(s protocol.ErrorCode) error { return &refusal{status: s} }

// safeMessage makes text fit a reply's message field (§6.4): printable
// ASCII (the protocol's safe strings), at most 255 bytes. Other characters
// become '?', an ellipsis "...", line breaks "; ".
func safeMessage(s string) string {
	s = strings.NewReplacer("\u2026", "...", "\r\n", "; ", "\n", "; ", "\t", " ").Replace(s)
	b := []byte(s)
	out := b[:0]
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x20 && r < 0x7f {
			out = append(out, byte(r))
		} else {
			out = append(out, '?')
		}
		i += size
	}
	return truncate(string(out), 255)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// str returns a required string field, dropping the request without it.
func str(r *Request, name string) (string, error) {
	v, ok := r.Fields[name]
	if !ok {
		return "", fmt.Errorf("%w: field %q is missing", ErrDrop, name)
	}
	return string(v), nil
}

// optBool returns a bool field, or def when it is absent.
func optBool(r *Request, name string, def bool) (bool, error) {
	v, ok := r.Fields[name]
	if !ok {
		return def, nil
	}
	if len(v) != 1 || v[0] > 1 {
		return false, fmt.Errorf("%w: field %q is not a bool", ErrDrop, name)
	}
	return v[0] == 1, nil
}

func boolValue(b bool) []byte {
	if b {
		return []byte{1}
	}
	return []byte{0}
}

func u32(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

// list is a reply listing names, each followed by a 00 byte.
func list(countField string, names []string) *Response {
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
	}
	return &Response{Fields: []Field{{countField, u32(len(names))}}, Payload: bytes.NewReader(b.Bytes()), PayloadSize: int64(b.Len())}
}

func withPayload(b []byte) *Response {
	return &Response{Payload: bytes.NewReader(b), PayloadSize: int64(len(b))}
}

// storeStatus maps store errors to Sigul's codes.
func storeStatus(err error) error {
	var nf *store.NotFoundError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf):
		switch nf.Kind {
		case store.KindUser:
			return refuse(protocol.CodeUserNotFound)
		case store.KindKey:
			return refuse(protocol.CodeKeyNotFound)
		case store.KindAccess:
			return refuse(protocol.CodeKeyUserNotFound)
		}
	case errors.Is(err, store.ErrExists):
		return refuse(protocol.CodeAlreadyExists)
	case errors.Is(err, store.ErrInUse):
		return refuse(protocol.CodeUserHasKeyAccesses)
	case errors.Is(err, store.ErrLastAccess):
		return refuse(protocol.CodeOnlyOneKeyUser)
	}
	return err
}
