package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-project/signet/protocol"
)

// ConnServer answers the request carried by one connection to a bridge, in
// the order of PROTOCOL-v1 §4.3: request header, payload class and limit,
// the payload (spooled, its SHA-512 computed), the inner TLS session with
// the client (one field block), the hash and key checks, the operation,
// and the reply with its MACs. Every failure before the operation drops
// the connection without a reply, as Sigul does.
type ConnServer struct {
	Handlers *Handlers
	// InnerTLS is the server side of the inner TLS session: the server's
	// certificate, and client certificates required and checked against
	// the client CA. The session is used with SessionTicketsDisabled set
	// (see innerConfig).
	InnerTLS *tls.Config
	// MaxFilePayload bounds FILE-class payloads (default 1 GiB);
	// MaxMemoryPayload the unknown-operation payload (default 1 MiB).
	MaxFilePayload, MaxMemoryPayload uint64
	// SpoolDir holds payloads larger than MemorySpool bytes while a
	// request runs (default: the system's temporary directory); the files
	// are unlinked as soon as they are created.
	SpoolDir    string
	MemorySpool int64
	// RequestTimeout bounds one request from its first byte to the end of
	// the connection (default 30 minutes), so a stalled peer cannot hold
	// a connection, and a token session, forever.
	RequestTimeout time.Duration
	// BatchWorkers is how many sign-rpms items of one connection are
	// signed at once (default defaultBatchWorkers); MaxRPMsPayloads
	// bounds the sum of one connection's sub-request payloads, each
	// rounded up to 4 KiB (default defaultMaxRPMsPayloads, §7.11).
	BatchWorkers    int
	MaxRPMsPayloads uint64
	Log             *slog.Logger

	innerOnce sync.Once
	inner     *tls.Config
}

// innerConfig is InnerTLS without session tickets. A client sends its
// inner message and closes the inner session without reading from it
// again (§5.5), so a ticket, which TLS 1.3 sends after the client's
// certificate and Finished, is never read: making one (sealing the
// session state with the client's certificate) only cost the server CPU
// on every request.
func (s *ConnServer) innerConfig() *tls.Config {
	s.innerOnce.Do(func() {
		s.inner = s.InnerTLS.Clone()
		s.inner.SessionTicketsDisabled = true
	})
	return s.inner
}

// defaultMaxRPMsPayloads is the server's default bound on one sign-rpms
// connection's payloads, as in Sigul (§7.11).
const defaultMaxRPMsPayloads = 10 << 30

func (s *ConnServer) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Serve handles one connection; the caller closes it afterwards. A
// connection from a Dialer on which the bridge accepted the reuse
// extension (protocol.ReuseALPN) carries one request after another: each
// request that ends cleanly, with both of the bridge's EOF markers and
// nothing else after the reply, is followed by the next on the same
// connection, with fresh per-request state. Anything else ends the
// connection, as without the extension.
func (s *ConnServer) Serve(ctx context.Context, conn net.Conn) {
	rc, _ := conn.(reusableConn)
	reuse := rc != nil && rc.reusable()
	for {
		if !s.serveOne(ctx, conn, reuse) || !rc.idleAgain() {
			return
		}
	}
}

// reusableConn is what a Dialer's connections tell Serve: whether the
// reuse extension was negotiated, and, after a request that ended cleanly,
// that the connection waits for another (false: it must end).
type reusableConn interface {
	reusable() bool
	idleAgain() bool
}

// serveOne serves one request on conn and reports whether the connection
// may carry another: only with reuse, and only after a clean end.
func (s *ConnServer) serveOne(ctx context.Context, conn net.Conn, reuse bool) (again bool) {
	timeout := s.RequestTimeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	// Idle connections wait at the bridge without a deadline; the clock
	// starts with the request's first byte.
	dc := &deadlineOnFirstRead{Conn: conn, timeout: timeout}
	// A bug in one handler drops its request; the server goes on serving.
	defer func() {
		if p := recover(); p != nil {
			s.log().Error("request handler panicked; request dropped", "panic", p, "stack", string(debug.Stack()))
			again = false
		}
	}()
	m := protocol.NewMux(dc, nil)
	op, err := s.serve(ctx, m)
	if err != nil {
		if !dc.begun.Load() && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
			// No request came: the bridge closed an idle connection (it
			// is stopping, or the connection served its share), or the
			// server is stopping.
			s.log().Debug("idle connection closed by the bridge", "err", err)
			return false
		}
		s.log().Warn("request dropped", "op", op, "err", err)
		return false
	}
	if !reuse {
		// Drain before close (§2.7): the bridge closes first.
		m.Drain()
		return false
	}
	// The end-of-request rule of the reuse extension: the bridge's outer
	// and inner EOF markers, and nothing else, follow the request. The
	// demux stops at the second marker, so the next Mux starts exactly at
	// the next request.
	if err := m.AwaitEOF(); err != nil {
		s.log().Warn("connection to the bridge closed after the reply: the request did not end cleanly", "op", op, "err", err)
		return false
	}
	// The next request gets its own deadline from its own first byte.
	return conn.SetDeadline(time.Time{}) == nil
}

func (s *ConnServer) serve(ctx context.Context, m *protocol.Mux) (string, error) {
	h, err := protocol.ReadRequestHeader(m.Reader(protocol.Outer))
	var verr *protocol.VersionError
	if errors.As(err, &verr) {
		return "", errors.Join(err, protocol.WriteUnknownVersion(m))
	}
	if err != nil {
		return "", err
	}
	op := h.Op()
	class := protocol.PayloadMemory // the unknown-operation handler's class
	if spec, ok := protocol.LookupOp(op); ok {
		class = spec.ServerPayload
	}
	maxFile, maxMem := s.MaxFilePayload, s.MaxMemoryPayload
	if maxFile == 0 {
		maxFile = protocol.DefaultMaxFilePayload
	}
	if maxMem == 0 {
		maxMem = protocol.DefaultMaxMemoryPayload
	}
	if limit := class.Limit(maxFile, maxMem); h.PayloadLen() > limit {
		return op, &protocol.LimitError{What: "request payload of " + op, Value: h.PayloadLen(), Limit: limit}
	}
	payload := h.Payload(m.Reader(protocol.Outer))
	spool, err := s.spool(payload, h.PayloadLen())
	if err != nil {
		return op, err
	}
	defer spool.Close()

	inner := tls.Server(m.InnerConn(), s.innerConfig())
	msg, err := protocol.ReadInnerMessage(inner)
	if err != nil {
		inner.Close()
		return op, err
	}
	defer msg.Zero()
	// The server closes its side of the inner session before it replies,
	// without waiting for the client's (§5.5).
	state := inner.ConnectionState()
	if err := inner.Close(); err != nil {
		return op, err
	}
	authenticated, err := msg.Verify(h, payload.SHA512())
	if err != nil {
		return op, err
	}
	keys, err := msg.ReplyKeys()
	if err != nil {
		return op, err
	}
	cn := ""
	if len(state.PeerCertificates) > 0 {
		cn = state.PeerCertificates[0].Subject.CommonName
	}
	req := &Request{Op: op, User: h.User(), CN: cn, Fields: map[string][]byte{}, Secrets: map[string][]byte{},
		Payload: spool, PayloadAt: spool, PayloadSize: int64(h.PayloadLen()), PayloadSHA512: payload.SHA512(),
		PayloadAuthenticated: authenticated}
	var subKeys protocol.SubKeys
	if op == "sign-rpms" {
		// §7.1 step 2: all four base keys, each at least 64 bytes, or drop.
		if subKeys, err = msg.SubKeys(); err != nil {
			return op, err
		}
	}
	for _, f := range h.Fields() {
		req.Fields[f.Key] = f.Value
	}
	for _, f := range msg.Fields {
		req.Secrets[f.Key] = f.Value
	}
	resp, err := s.Handlers.Serve(ctx, req)
	if err != nil {
		return op, err
	}
	var fields protocol.Fields
	for _, f := range resp.Fields {
		if err := fields.Set(f.Key, f.Value); err != nil {
			return op, err
		}
	}
	out := m.Writer(protocol.Outer)
	err = protocol.WriteReply(out, keys, resp.Status, fields, uint64(resp.PayloadSize), resp.Payload)
	closePayload(resp.Payload)
	if err != nil {
		if resp.Batch != nil {
			resp.Batch.Close()
		}
		return op, err
	}
	if resp.Batch != nil {
		if err := s.subPhase(ctx, m, subKeys, resp.Batch); err != nil {
			return op, err
		}
	}
	return op, out.Close()
}

// closePayload closes a reply payload that is a file (a signed RPM or PE
// image written by the handler).
func closePayload(r io.Reader) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

// spooled is a request payload held in memory or in an unlinked file.
type spooled struct {
	io.ReadSeeker
	io.ReaderAt
	f *os.File
}

func (p *spooled) Close() error {
	if p.f != nil {
		return p.f.Close()
	}
	return nil
}

// spool reads the whole payload (the server must, before the inner session
// starts: §4.3 steps 5 and 6), in memory when small, else to a file.
func (s *ConnServer) spool(r io.Reader, n uint64) (*spooled, error) {
	mem := s.MemorySpool
	if mem <= 0 {
		mem = 1 << 20
	}
	if n <= uint64(mem) {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		br := bytes.NewReader(b)
		return &spooled{ReadSeeker: br, ReaderAt: br}, nil
	}
	f, err := os.CreateTemp(s.SpoolDir, "signet-payload-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // nothing is left behind, whatever happens next
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &spooled{ReadSeeker: f, ReaderAt: f, f: f}, nil
}

// deadlineOnFirstRead sets the connection's deadline when its first bytes
// arrive.
type deadlineOnFirstRead struct {
	net.Conn
	timeout time.Duration
	once    sync.Once
	begun   atomic.Bool
}

func (c *deadlineOnFirstRead) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.once.Do(func() {
			c.Conn.SetDeadline(time.Now().Add(c.timeout))
			c.begun.Store(true)
		})
	}
	return n, err
}
