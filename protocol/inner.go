package protocol

import (
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// InnerConn is a net.Conn over the inner stream of a Mux (§5.1), so that
// crypto/tls.Client (on the client) or crypto/tls.Server (on the server) can
// run the nested TLS session over it. The bridge does not use it; it relays
// inner chunks with StreamReader.ReadChunk and ChunkWriter.WriteChunk.
//
// Close semantics follow §5.5 and §2.7: Close sends the inner EOF marker
// (80000000) if it was not sent yet and from then on drops inner data from
// the peer (its close_notify and EOF marker need not be read); it never
// closes the outer connection. Read returns io.EOF when the peer's inner EOF
// marker arrives or the connection ends.
//
// Deadlines are accepted, because tls.Conn.Close sets one, and ignored; to
// bound the time an endpoint waits, set deadlines on the outer connection,
// which then apply to both streams.
type InnerConn struct {
	r *StreamReader
	w *StreamWriter

	mu         sync.Mutex
	closed     bool
	sentEOF    bool
	closeErr   error
	closedOnce bool
}

// InnerConn returns the net.Conn of the inner stream (the same value on
// every call).
func (m *Mux) InnerConn() *InnerConn {
	m.innerMu.Lock()
	defer m.innerMu.Unlock()
	if m.inner == nil {
		m.inner = &InnerConn{r: m.readers[Inner], w: m.writers[Inner]}
	}
	return m.inner
}

// Read reads inner stream data. After Close it returns net.ErrClosed.
func (c *InnerConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	n, err := c.r.Read(p)
	if err != nil && errors.Is(err, ErrStreamEnded) {
		return n, net.ErrClosed
	}
	return n, err
}

// Write writes p as inner chunks. It refuses writes after closeWrite or
// Close.
func (c *InnerConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	closed, sent := c.closed, c.sentEOF
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	if sent {
		return 0, fmt.Errorf("%w: inner stream (CloseWrite was called)", ErrStreamEnded)
	}
	return c.w.Write(p)
}

// closeWrite sends the inner EOF marker, once; reading goes on.
func (c *InnerConn) closeWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeWriteLocked()
}

func (c *InnerConn) closeWriteLocked() error {
	if c.sentEOF {
		return nil
	}
	c.sentEOF = true
	return c.w.Close()
}

// Close sends the inner EOF marker if closeWrite has not, and discards
// every further inner byte from the peer. It does not close the outer
// connection. Calls after the first return the first call's result.
func (c *InnerConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closedOnce {
		return c.closeErr
	}
	c.closedOnce = true
	c.closed = true
	c.closeErr = c.closeWriteLocked()
	c.r.Discard()
	return c.closeErr
}

type innerAddr struct{}

func (innerAddr) Network() string { return "sigul-inner" }
func (innerAddr) String() string  { return "sigul-inner-stream" }

// LocalAddr returns a placeholder address: the inner stream has none.
func (c *InnerConn) LocalAddr() net.Addr { return innerAddr{} }

// RemoteAddr returns a placeholder address: the inner stream has none.
func (c *InnerConn) RemoteAddr() net.Addr { return innerAddr{} }

// SetDeadline does nothing and returns nil; see the type comment.
func (c *InnerConn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline does nothing and returns nil; see the type comment.
func (c *InnerConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline does nothing and returns nil; see the type comment.
func (c *InnerConn) SetWriteDeadline(time.Time) error { return nil }

// InnerMessage is the one field block the client sends over the inner TLS
// session (§5.2): the two hashes, the two reply MAC keys, the sign-rpms base
// keys when needed, and the secrets of the operation (password,
// passphrase, ...). Fields keeps wire order so a decoded message re-encodes
// to the same bytes. Its values are secrets: Zero it when done and never log
// it.
type InnerMessage struct {
	Fields Fields
}

// NewInnerMessage builds the inner message for the request h: it sets
// header-auth-sha512 to SHA-512(R1‖R2), payload-auth-sha512 to
// payloadSHA512, and the reply keys. A nil payloadSHA512 leaves the field
// out, which §5.2 allows only for op sign-rpm; it is refused for any other
// op. It refuses a payload hash that is not 64 bytes and keys shorter than
// minKeyLen. Add the operation's secrets with Fields.Set, and the sign-rpms
// base keys with SetSubKeys.
func NewInnerMessage(h *RequestHeader, payloadSHA512 []byte, keys ReplyKeys) (*InnerMessage, error) {
	m := &InnerMessage{}
	if err := m.Fields.Set(fieldHeaderAuthSHA512, h.SHA512()); err != nil {
		return nil, err
	}
	switch {
	case payloadSHA512 == nil && h.Op() != "sign-rpm":
		return nil, &FieldError{Key: fieldPayloadAuthSHA512, Err: ErrMissingField, Reason: "may be left out only for op sign-rpm (§5.2)"}
	case payloadSHA512 != nil && len(payloadSHA512) != 64:
		return nil, fieldErr(fieldPayloadAuthSHA512, ErrInvalidField, "SHA-512 value must be 64 bytes, got %d", len(payloadSHA512))
	case payloadSHA512 != nil:
		if err := m.Fields.Set(fieldPayloadAuthSHA512, payloadSHA512); err != nil {
			return nil, err
		}
	}
	for _, kv := range []struct {
		k string
		v []byte
	}{{fieldHeaderAuthKey, keys.Header}, {fieldPayloadAuthKey, keys.Payload}} {
		if len(kv.v) < minKeyLen {
			return nil, fieldErr(kv.k, ErrShortKey, "key is %d bytes, at least %d required", len(kv.v), minKeyLen)
		}
		if err := m.Fields.Set(kv.k, kv.v); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// SetSubKeys adds the four sign-rpms base keys (§5.2, §7.4). It refuses
// keys shorter than minKeyLen or longer than maxValueLen.
func (m *InnerMessage) SetSubKeys(k SubKeys) error {
	for _, kv := range k.named() {
		if len(kv.v) < minKeyLen {
			return fieldErr(kv.k, ErrShortKey, "key is %d bytes, at least %d required", len(kv.v), minKeyLen)
		}
		if err := m.Fields.Set(kv.k, kv.v); err != nil {
			return err
		}
	}
	return nil
}

// MarshalBinary returns the encoded field block. It refuses fields that do
// not encode.
func (m *InnerMessage) MarshalBinary() ([]byte, error) { return m.Fields.MarshalBinary() }

// ReadInnerMessage reads one field block from r, typically the server's
// tls.Conn, parsing it as the bytes arrive and reading nothing after it
// (§4.3 step 6). It refuses what ReadFields refuses; an r that ends before
// or inside the block gives an error wrapping io.ErrUnexpectedEOF.
func ReadInnerMessage(r io.Reader) (*InnerMessage, error) {
	f, _, err := ReadFields(r)
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("protocol: inner session ended before the inner message: %w", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return &InnerMessage{Fields: f}, nil
}

// parseInnerMessage decodes an inner message that fills b exactly.
func parseInnerMessage(b []byte) (*InnerMessage, error) {
	var f Fields
	if err := f.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return &InnerMessage{Fields: f}, nil
}

// Verify runs the server's checks of §4.3 steps 7-9 for the request h whose
// payload hashed to payloadSHA512: header-auth-sha512 must be present and
// equal SHA-512(R1‖R2); payload-auth-sha512 must be present and equal
// payloadSHA512, except that for op sign-rpm it may be absent, which makes
// authenticated false (§7.10); header-auth-key and payload-auth-key must be
// present and at least minKeyLen bytes. A hash mismatch is an
// *IntegrityError; a missing or short field a *FieldError. Hashes are
// compared in constant time. Any error means: drop the connection.
func (m *InnerMessage) Verify(h *RequestHeader, payloadSHA512 []byte) (authenticated bool, err error) {
	got, ok := m.Fields.Lookup(fieldHeaderAuthSHA512)
	if !ok {
		return false, &FieldError{Key: fieldHeaderAuthSHA512, Err: ErrMissingField, Reason: "required field missing"}
	}
	if !hmac.Equal(got, h.SHA512()) {
		return false, &IntegrityError{What: "header-auth-sha512"}
	}
	authenticated = true
	got, ok = m.Fields.Lookup(fieldPayloadAuthSHA512)
	switch {
	case !ok && h.Op() == "sign-rpm":
		authenticated = false
	case !ok:
		return false, &FieldError{Key: fieldPayloadAuthSHA512, Err: ErrMissingField, Reason: "required field missing"}
	case !hmac.Equal(got, payloadSHA512):
		return false, &IntegrityError{What: "payload-auth-sha512"}
	}
	if _, err := m.ReplyKeys(); err != nil {
		return false, err
	}
	return authenticated, nil
}

func (m *InnerMessage) key(name string) ([]byte, error) {
	v, ok := m.Fields.Lookup(name)
	if !ok {
		return nil, &FieldError{Key: name, Err: ErrMissingField, Reason: "required field missing"}
	}
	if len(v) < minKeyLen {
		return nil, fieldErr(name, ErrShortKey, "key is %d bytes, at least %d required", len(v), minKeyLen)
	}
	return v, nil
}

// ReplyKeys returns header-auth-key and payload-auth-key (not copied). It
// refuses a missing key or one shorter than minKeyLen.
func (m *InnerMessage) ReplyKeys() (ReplyKeys, error) {
	var k ReplyKeys
	var err error
	if k.Header, err = m.key(fieldHeaderAuthKey); err != nil {
		return ReplyKeys{}, err
	}
	if k.Payload, err = m.key(fieldPayloadAuthKey); err != nil {
		return ReplyKeys{}, err
	}
	return k, nil
}

// SubKeys returns the four sign-rpms base keys (not copied). It refuses a
// missing key or one shorter than minKeyLen (§7.1 step 2: drop).
func (m *InnerMessage) SubKeys() (SubKeys, error) {
	var k SubKeys
	for _, p := range []struct {
		name string
		dst  *[]byte
	}{
		{fieldSubRequestHeaderAuthKey, &k.RequestHeader},
		{fieldSubRequestPayloadAuthKey, &k.RequestPayload},
		{fieldSubReplyHeaderAuthKey, &k.ReplyHeader},
		{fieldSubReplyPayloadAuthKey, &k.ReplyPayload},
	} {
		v, err := m.key(p.name)
		if err != nil {
			return SubKeys{}, err
		}
		*p.dst = v
	}
	return k, nil
}

// Zero overwrites every value of the message with zeros.
func (m *InnerMessage) Zero() { m.Fields.Zero() }

// GenerateReplyKeys returns two fresh 64-byte keys read from rand (nil
// means crypto/rand), as the reference client makes them (§5.2).
func GenerateReplyKeys(rnd io.Reader) (ReplyKeys, error) {
	b, err := randomBytes(rnd, 2*minKeyLen)
	if err != nil {
		return ReplyKeys{}, err
	}
	return ReplyKeys{Header: b[:minKeyLen:minKeyLen], Payload: b[minKeyLen:]}, nil
}

// GenerateSubKeys returns four fresh 64-byte sign-rpms base keys read from
// rand (nil means crypto/rand).
func GenerateSubKeys(rnd io.Reader) (SubKeys, error) {
	b, err := randomBytes(rnd, 4*minKeyLen)
	if err != nil {
		return SubKeys{}, err
	}
	k := minKeyLen
	return SubKeys{
		RequestHeader:  b[0:k:k],
		RequestPayload: b[k : 2*k : 2*k],
		ReplyHeader:    b[2*k : 3*k : 3*k],
		ReplyPayload:   b[3*k:],
	}, nil
}

func randomBytes(rnd io.Reader, n int) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, fmt.Errorf("protocol: generating keys: %w", err)
	}
	return b, nil
}
