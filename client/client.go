// Package client is signet's client library: it sends one Sigul protocol
// v1 request through a bridge to the server and returns the verified reply
// (shared/docs/PROTOCOL-v1.md; section numbers in comments refer to it).
//
// A request travels as the outer stream of a TLS connection to the bridge;
// its secrets (password, passphrase, ...) and fresh reply MAC keys travel
// in a second TLS session with the server, nested inside the first, which
// the bridge cannot read. The reply header is trusted only after its
// HMAC-SHA512 verified, and a payload only after its own MAC verified, so a
// bridge that alters a reply is detected (ErrIntegrity).
//
// Client.Do performs any request; the typed methods (ListUsers, SignData,
// GrantKeyAccess, ...) build the fields each operation sends (§8). Output
// files are written with WriteFileAtomic: nothing appears at the
// destination unless the reply verified.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/user"
	"sync/atomic"
	"time"

	"github.com/signet-project/signet/protocol"
)

// Error is a reply with a non-zero Sigul error code (§6.3): the server
// understood the request and refused it. The header carrying it verified.
type Error struct {
	Op      string
	Code    protocol.ErrorCode
	Message string // the server's message field (§6.4), often empty
}

// Error returns the code's standard text and name, then the server's
// message: "Authentication failed (AUTHENTICATION_FAILED)".
func (e *Error) Error() string {
	s := e.Code.Text()
	if e.Code.Known() {
		s += " (" + e.Code.String() + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is makes errors.Is(err, &Error{Code: c}) match any *Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Op == "" && t.Message == ""
}

// CodeOf returns the Sigul error code carried by err, and whether it
// carries one.
func CodeOf(err error) (protocol.ErrorCode, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	return 0, false
}

// ErrIntegrity is wrapped by every error about a reply whose MAC did not
// verify (the reply was altered on its way, or not made by the server this
// request's inner session reached). It is protocol.ErrIntegrity.
var ErrIntegrity = protocol.ErrIntegrity

// ErrNoReply is wrapped when the connection ended without a reply: the
// bridge or the server dropped the request (§6.6), for example because a
// field was refused, the payload was too large or a hash did not match.
var ErrNoReply = errors.New("the connection ended without a reply (the bridge or the server dropped the request)")

// Client sends requests as one user. Its zero value is not usable: use New.
type Client struct {
	cfg     Config
	user    string
	bridges []bridge
	inner   *tls.Config
	// last is the index in bridges of the bridge that last took a
	// connection: the next request tries it first.
	last atomic.Int32

	// Dialer, if set, opens the TCP connection to the bridge.
	Dialer *net.Dialer
	// MaxReplyPayload bounds a reply payload (default 1 TiB).
	MaxReplyPayload uint64
	// MaxListPayload bounds the payload of list replies, which are held in
	// memory (default 64 MiB).
	MaxListPayload uint64
	// Log receives debug messages (never secrets); nil discards them.
	Log *slog.Logger
	// Retry bounds the failover between bridges; the zero value uses
	// the defaults documented in RetryPolicy.
	Retry RetryPolicy
}

// New returns a client for cfg. It reads the CA, certificate and key files
// now. The user name is cfg.UserName, or the login name if that is empty.
func New(cfg *Config) (*Client, error) {
	c := &Client{cfg: *cfg}
	if c.cfg.BridgePort == 0 {
		c.cfg.BridgePort = DefaultBridgePort
	}
	outer, inner, err := c.cfg.tlsConfigs()
	if err != nil {
		return nil, err
	}
	addrs, err := c.cfg.BridgeAddrs()
	if err != nil {
		return nil, err
	}
	c.inner = inner
	for _, a := range addrs {
		c.bridges = append(c.bridges, bridge{addr: a, outer: outer(a.Host)})
	}
	c.user = c.cfg.UserName
	if c.user == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("no user name configured and the login name is unknown: %w", err)
		}
		c.user = u.Username
	}
	if !protocol.IsSafeString(c.user) {
		return nil, fmt.Errorf("user name %q contains prohibited characters", c.user)
	}
	return c, nil
}

// User returns the user name sent in requests.
func (c *Client) User() string { return c.user }

// SetUser changes the user name sent in requests.
func (c *Client) SetUser(name string) error {
	if name == "" || !protocol.IsSafeString(name) {
		return fmt.Errorf("user name %q is empty or contains prohibited characters", name)
	}
	c.user = name
	return nil
}

func (c *Client) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Request is one request. Fields are the operation's outer fields (§4.4);
// op and user are added by Do. Secrets are the inner fields (§5.2:
// password, passphrase, new-password, new-passphrase, ...); Do overwrites
// their values with zeros when it returns, whatever the outcome.
type Request struct {
	Op      string
	Fields  protocol.Fields
	Secrets protocol.Fields
	// Payload is read for exactly PayloadSize bytes; nil if PayloadSize
	// is 0.
	Payload     io.Reader
	PayloadSize int64
	// Expect lists non-zero codes that are answers, not errors, for this
	// request (key-user-info's KEY_USER_NOT_FOUND): Do then returns the
	// reply without an error after checking its empty payload.
	Expect []protocol.ErrorCode
	// SubKeys and Sub serve sign-rpms (§7): the base keys go in the inner
	// message, and after an OK reply Sub runs the sub-phase on the
	// connection.
	SubKeys *protocol.SubKeys
	Sub     func(m *protocol.Mux) error
	// NoPayloadAuth leaves payload-auth-sha512 out of the inner message,
	// as Sigul's client does for a sign-rpm of a package from Koji,
	// whose payload the bridge supplies (§5.2, §7.10).
	NoPayloadAuth bool
	// KojiOnly is sign-rpm with return-data false (§6.5): the bridge
	// stored the signature in Koji and sends an empty payload with the
	// server's MAC of the package it dropped, which is read and ignored.
	KojiOnly bool
}

// Reply is a verified reply.
type Reply struct {
	Code   protocol.ErrorCode
	Fields protocol.Fields
	// PayloadLen is the number of payload bytes written to the destination.
	PayloadLen uint64
}

// Do sends req and writes the reply payload to dst (io.Discard if nil).
// It returns a nil error only when the reply header and the payload MAC
// both verified and the code is 0 (or listed in req.Expect). Bytes written
// to dst before an error must be thrown away; WriteFileAtomic does that for
// files.
//
// A refused request gives an *Error; a reply that does not verify an error
// wrapping ErrIntegrity; a dropped request an error wrapping ErrNoReply.
func (c *Client) Do(ctx context.Context, req *Request, dst io.Writer) (*Reply, error) {
	defer req.Secrets.Zero()
	if dst == nil {
		dst = io.Discard
	}
	if req.PayloadSize < 0 {
		return nil, fmt.Errorf("%s: negative payload size", req.Op)
	}
	h, err := c.header(req)
	if err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}

	return c.failover(ctx, h, req, dst)
}

// attempt sends req through bridge br. sent reports whether the request
// may have been acted on: whether the inner message, which the server
// needs before it does anything, may have reached it.
func (c *Client) attempt(ctx context.Context, br bridge, h *protocol.RequestHeader, req *Request, dst io.Writer) (reply *Reply, sent bool, err error) {
	d := c.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	}
	addr := br.addr.String()
	c.log().Debug("connecting to the bridge", "addr", addr, "op", req.Op, "user", c.user)
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("connecting to the bridge: %w", err)
	}
	conn := tls.Client(raw, br.outer)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, false, fmt.Errorf("TLS handshake with the bridge %s: %w", addr, err)
	}

	reply, sent, err = c.exchange(conn, h, req, dst)
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return reply, sent, err
}

// header builds R1‖R2‖R3 and checks them against the bridge's whitelist
// (§4.4) so that a request the bridge would drop is refused here, with a
// useful message.
func (c *Client) header(req *Request) (*protocol.RequestHeader, error) {
	fields := req.Fields.Clone()
	if err := fields.SetStr(protocol.FieldOp, req.Op); err != nil {
		return nil, err
	}
	if err := fields.SetStr(protocol.FieldUser, c.user); err != nil {
		return nil, err
	}
	h, err := protocol.NewRequestHeader(fields, uint64(req.PayloadSize))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Op, err)
	}
	if _, err := protocol.ValidateRequest(h); err != nil {
		return nil, fmt.Errorf("%s: %w", req.Op, err)
	}
	return h, nil
}

func (c *Client) exchange(conn *tls.Conn, h *protocol.RequestHeader, req *Request, dst io.Writer) (_ *Reply, sent bool, err error) {
	m := protocol.NewMux(conn, nil)
	out := m.Writer(protocol.Outer)

	// The inner ClientHello goes out first, as Sigul's client sends it
	// (§16.1); the server answers it only after it has read the payload.
	inner := tls.Client(m.InnerConn(), c.inner)
	hs := make(chan error, 1)
	go func() { hs <- inner.Handshake() }()

	payload := req.Payload
	if req.PayloadSize == 0 {
		payload = nil
	}
	psum, err := protocol.WriteRequest(out, h, payload)
	if err != nil {
		return nil, sent, fmt.Errorf("%s: sending the request: %w", req.Op, err)
	}
	if err := <-hs; err != nil {
		return nil, sent, fmt.Errorf("%s: inner TLS handshake with the server: %w", req.Op, noReply(err))
	}

	keys, err := protocol.GenerateReplyKeys(nil)
	if err != nil {
		return nil, sent, err
	}
	defer keys.Zero()
	// From here on the server may act on the request.
	sent = true
	if req.NoPayloadAuth {
		psum = nil
	}
	if err := c.sendInner(inner, h, psum, keys, req.Secrets, req.SubKeys); err != nil {
		return nil, sent, fmt.Errorf("%s: sending the inner message: %w", req.Op, err)
	}

	rh, err := protocol.ReadReplyHeader(m.Reader(protocol.Outer), keys.Header)
	if err != nil {
		if errors.Is(err, protocol.ErrIntegrity) {
			return nil, sent, fmt.Errorf("%s: reply header failed its integrity check: %w", req.Op, err)
		}
		return nil, sent, fmt.Errorf("%s: reading the reply: %w", req.Op, noReply(err))
	}
	reply := &Reply{Code: rh.Code(), Fields: rh.Fields()}
	c.log().Debug("reply", "op", req.Op, "code", reply.Code)
	expected := false
	for _, e := range req.Expect {
		expected = expected || e == reply.Code
	}
	if reply.Code != protocol.CodeOK && !expected {
		// As the reference client: the verified header is the answer;
		// Y4-Y6 need not be read (§6.1).
		c.teardown(conn, m)
		return reply, sent, &Error{Op: req.Op, Code: reply.Code, Message: rh.Message()}
	}
	max := c.MaxReplyPayload
	if max == 0 {
		max = 1 << 40
	}
	if expected && reply.Code != protocol.CodeOK {
		max = 0
	}
	if req.KojiOnly {
		// The only reply whose payload MAC is skipped on purpose: it
		// is over the signed package, which the bridge stored in Koji
		// and did not forward (§6.5). The payload must be empty.
		p, err := protocol.NewRelayPayloadReader(m.Reader(protocol.Outer), 0, "reply payload (--koji-only)")
		if err == nil {
			err = p.Finish()
		}
		if err != nil {
			return nil, sent, fmt.Errorf("%s: reading the reply payload: %w", req.Op, err)
		}
		c.teardown(conn, m)
		return reply, sent, nil
	}
	p, err := protocol.NewPayloadReader(m.Reader(protocol.Outer), keys.Payload, max, "reply payload")
	if err != nil {
		return nil, sent, fmt.Errorf("%s: reading the reply payload: %w", req.Op, err)
	}
	n, err := io.Copy(dst, p)
	reply.PayloadLen = uint64(n)
	if err != nil {
		if errors.Is(err, protocol.ErrIntegrity) {
			return nil, sent, fmt.Errorf("%s: reply payload failed its integrity check: %w", req.Op, err)
		}
		return nil, sent, fmt.Errorf("%s: reading the reply payload: %w", req.Op, err)
	}
	if req.Sub != nil && reply.Code == protocol.CodeOK {
		// No deadline: a batch takes as long as it takes; ctx still
		// cancels it.
		if err := req.Sub(m); err != nil {
			return reply, sent, fmt.Errorf("%s: %w", req.Op, err)
		}
	}
	c.teardown(conn, m)
	return reply, sent, nil
}

// sendInner writes the inner message (§5.2) and closes the inner session at
// once (§5.5): close_notify, then the inner EOF.
func (c *Client) sendInner(inner *tls.Conn, h *protocol.RequestHeader, psum []byte, keys protocol.ReplyKeys, secrets protocol.Fields, sub *protocol.SubKeys) error {
	msg, err := protocol.NewInnerMessage(h, psum, keys)
	if err != nil {
		return err
	}
	defer msg.Zero()
	if sub != nil {
		if err := msg.SetSubKeys(*sub); err != nil {
			return err
		}
	}
	for _, s := range secrets {
		if err := msg.Fields.Set(s.Key, s.Value); err != nil {
			return err
		}
	}
	b, err := msg.MarshalBinary()
	if err != nil {
		return err
	}
	defer clear(b)
	if _, err := inner.Write(b); err != nil {
		return noReply(err)
	}
	return inner.Close()
}

// teardown ends the connection as §2.7 and §15.1 ask: the outer EOF, then
// reading until the bridge's EOF or close, so no RST loses data. Errors do
// not matter any more: the reply has been verified or refused.
func (c *Client) teardown(conn net.Conn, m *protocol.Mux) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	m.Writer(protocol.Outer).Close()
	m.Drain(protocol.Outer)
}

func noReply(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %v", ErrNoReply, err)
	}
	return err
}
