package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Dialer keeps the server's connections to one bridge. The server never
// listens: it dials the bridge and keeps Idle connections waiting there;
// each carries one request. When a connection starts carrying a request
// (its first byte arrives), another is dialed so that Idle stay waiting,
// up to Max connections in all. Failed dials are retried with jittered
// exponential backoff, so a restarted bridge is served again within
// MaxBackoff of coming back.
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
	// returns; the Dialer closes the connection afterwards.
	Serve func(ctx context.Context, conn net.Conn)
	// MinBackoff and MaxBackoff bound the wait between failed dials
	// (defaults 100 ms and 2 s).
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger

	mu    sync.Mutex
	idle  int // dialing or connected and waiting for a request
	total int
	conns int // connected (TLS up), idle or busy
	wake  chan struct{}
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

// worker dials until it has a connection, serves one request on it, and
// ends; Run starts another whenever fewer than Idle are waiting.
func (d *Dialer) worker(ctx context.Context) {
	busy := false
	defer func() {
		d.mu.Lock()
		if !busy {
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
			c := &firstReadConn{Conn: conn, first: func() {
				d.mu.Lock()
				busy = true
				d.idle--
				d.mu.Unlock()
				d.poke()
			}}
			// A request may be running when ctx ends: let it finish, but
			// close an idle connection at once.
			stop := context.AfterFunc(ctx, func() {
				if !c.started() {
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

func (d *Dialer) dial(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	td := tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 30 * time.Second}, Config: d.TLS}
	conn, err := td.DialContext(dctx, "tcp", d.Addr)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// firstReadConn calls first once, when the first bytes of a request
// arrive: the moment an idle connection becomes busy.
type firstReadConn struct {
	net.Conn
	once  sync.Once
	mu    sync.Mutex
	begun bool
	first func()
}

func (c *firstReadConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.once.Do(func() {
			c.mu.Lock()
			c.begun = true
			c.mu.Unlock()
			c.first()
		})
	}
	return n, err
}

func (c *firstReadConn) started() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.begun
}

// ErrNoBridges is returned when a server is configured without bridges.
var ErrNoBridges = errors.New("no bridge configured: the server has nowhere to take requests from")
