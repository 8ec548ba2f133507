package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-project/signet/protocol"
)

// Dialer keeps the server's connections to one bridge. The server never
// listens: it dials the bridge and keeps Idle connections waiting there.
// When a connection starts carrying a request (its first byte arrives),
// another is dialed so that Idle stay waiting, up to Max connections in
// all. Failed dials are retried with jittered exponential backoff, so a
// restarted bridge is served again within MaxBackoff of coming back.
//
// A connection carries one request (protocol v1, §1.4), unless the bridge
// accepted the reuse extension (protocol.ReuseALPN, offered unless
// NoReuse is set): then Serve may go on serving requests on it, and the
// connection counts as idle again between them.
type Dialer struct {
	// Addr is the bridge's server-facing address, host:port.
	Addr string
	// TLS is the configuration of the server's side of the outer TLS
	// session: its certificate, and the CA and name to check the bridge by.
	TLS *tls.Config
	// Idle is how many idle connections to keep (default 2); Max caps idle
	// plus busy ones (default 16, the token's session cap is a good value).
	Idle, Max int
	// Serve handles one connection: it reads one request, answers it and
	// returns; the Dialer closes the connection afterwards. ConnServer.Serve
	// serves further requests on a connection that negotiated reuse.
	Serve func(ctx context.Context, conn net.Conn)
	// NoReuse keeps the server from offering the reuse extension, so that
	// every connection carries one request, as with Sigul's bridge.
	NoReuse bool
	// MinBackoff and MaxBackoff bound the wait between failed dials
	// (defaults 100 ms and 2 s).
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger

	mu     sync.Mutex
	idle   int // dialing or connected and waiting for a request
	total  int
	conns  int // connected (TLS up), idle or busy
	reused int // requests that arrived on a connection that had carried one
	wake   chan struct{}
	tls    *tls.Config
}

// Reused reports how many requests arrived on a connection that had
// already carried a request (the reuse extension at work).
func (d *Dialer) Reused() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reused
}

// Connected reports how many connections to the bridge are established
// (TLS handshake done), idle or busy: more than zero means the bridge can
// pair requests with this server.
func (d *Dialer) Connected() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns
}

// Stats is a snapshot of a Dialer's connections.
type Stats struct{ Idle, Total int }

// Stats reports how many connections are idle (or being dialed) and in all.
func (d *Dialer) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{d.idle, d.total}
}

func (d *Dialer) defaults() {
	if d.Idle <= 0 {
		d.Idle = 2
	}
	if d.Max <= 0 {
		d.Max = 16
	}
	if d.Max < d.Idle {
		d.Max = d.Idle
	}
	if d.MinBackoff <= 0 {
		d.MinBackoff = 100 * time.Millisecond
	}
	if d.MaxBackoff <= 0 {
		d.MaxBackoff = 2 * time.Second
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	d.tls = d.TLS
	if !d.NoReuse {
		d.tls = d.TLS.Clone()
		if d.tls == nil {
			d.tls = &tls.Config{}
		}
		d.tls.NextProtos = []string{protocol.ReuseALPN}
	}
}

// Run keeps connections to the bridge until ctx ends, then waits for the
// requests in flight to finish and returns.
func (d *Dialer) Run(ctx context.Context) error {
	d.defaults()
	d.wake = make(chan struct{}, 1)
	var wg sync.WaitGroup
	for {
		d.mu.Lock()
		for d.idle < d.Idle && d.total < d.Max {
			d.idle++
			d.total++
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.worker(ctx)
			}()
		}
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-d.wake:
		}
	}
}

func (d *Dialer) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// worker dials until it has a connection, serves requests on it, and
// ends; Run starts another whenever fewer than Idle are waiting.
func (d *Dialer) worker(ctx context.Context) {
	var c *dialedConn
	defer func() {
		d.mu.Lock()
		if c == nil || !c.busy.Load() {
			d.idle--
		}
		d.total--
		d.mu.Unlock()
		d.poke()
	}()
	backoff := d.MinBackoff
	for {
		conn, err := d.dial(ctx)
		if err == nil {
			d.mu.Lock()
			d.conns++
			d.mu.Unlock()
			c = &dialedConn{Conn: conn, d: d, reuse: !d.NoReuse && conn.ConnectionState().NegotiatedProtocol == protocol.ReuseALPN}
			// A request may be running when ctx ends: let it finish, but
			// close an idle connection at once.
			stop := context.AfterFunc(ctx, func() {
				if c.stop() {
					conn.Close()
				}
			})
			d.Serve(context.WithoutCancel(ctx), c)
			stop()
			conn.Close()
			d.mu.Lock()
			d.conns--
			d.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			return
		}
		d.Log.Warn("cannot reach bridge", "bridge", d.Addr, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, d.MaxBackoff)
	}
}

func (d *Dialer) dial(ctx context.Context) (*tls.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	td := tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 30 * time.Second}, Config: d.tls}
	conn, err := td.DialContext(dctx, "tcp", d.Addr)
	if err != nil {
		return nil, err
	}
	return conn.(*tls.Conn), nil
}

// dialedConn is a connection of a Dialer as Serve sees it. It counts as
// idle until the first bytes of a request arrive; with the reuse
// extension, Serve makes it idle again (idleAgain) after a request that
// ended cleanly.
type dialedConn struct {
	net.Conn
	d     *Dialer
	reuse bool // the bridge accepted protocol.ReuseALPN
	// busy is written with d.mu held; read without it only as a shortcut.
	busy     atomic.Bool
	served   int  // requests begun on it; d.mu
	stopping bool // the Dialer is stopping; d.mu
}

func (c *dialedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.busy.Load() {
		c.begin()
	}
	return n, err
}

// begin marks the connection busy: a request's first bytes arrived.
func (c *dialedConn) begin() {
	d := c.d
	d.mu.Lock()
	if c.busy.Load() {
		d.mu.Unlock()
		return
	}
	c.busy.Store(true)
	d.idle--
	if c.served > 0 {
		d.reused++
	}
	c.served++
	d.mu.Unlock()
	d.poke()
}

// reusable reports whether the connection may carry more than one
// request.
func (c *dialedConn) reusable() bool { return c.reuse }

// idleAgain marks the connection idle after a request that ended cleanly,
// and reports whether it may wait for another: false once the Dialer is
// stopping (the connection then stays counted as busy until Serve
// returns).
func (c *dialedConn) idleAgain() bool {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.stopping || !c.busy.Load() {
		return false
	}
	c.busy.Store(false)
	d.idle++
	return true
}

// stop records that the Dialer is stopping and reports whether the
// connection is idle, and so may be closed at once.
func (c *dialedConn) stop() bool {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.stopping = true
	return !c.busy.Load()
}

// ErrNoBridges is returned when a server is configured without bridges.
var ErrNoBridges = errors.New("no bridge configured: the server has nowhere to take requests from")
