package bridge

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

var (
	// errPairingTimeout: no server connection became free within
	// Config.PairingTimeout.
	errPairingTimeout = errors.New("bridge: no server connection became free in time")
	// errClosed: the bridge is shutting down.
	errClosed = errors.New("bridge: shutting down")
	// errTooManyWaiting: Config.MaxPendingPairings requests already wait.
	errTooManyWaiting = errors.New("bridge: too many requests already wait for a server connection")
)

// serverConn is a connection a server dialed in, handshake done, waiting for
// a request. While it waits, a goroutine blocks in Read on it, so that a
// server that goes away is noticed (its close or reset ends the Read). The
// server sends nothing before it has a request (§1.4), so any byte or error
// there means the connection is unusable.
type serverConn struct {
	conn   *tls.Conn
	remote string
	since  time.Time
	// reuse: the server negotiated protocol.ReuseALPN, so the connection
	// may carry another request once one has ended cleanly; served counts
	// the requests it carried to their end (handleClient only).
	reuse  bool
	served int
	// release closes the connection and forgets it (set by the bridge).
	release func()

	done chan struct{} // closed when the idle Read returned
	n    int
	err  error
}

func newServerConn(c *tls.Conn) *serverConn {
	s := &serverConn{conn: c, remote: c.RemoteAddr().String(), since: time.Now(), done: make(chan struct{})}
	s.release = func() { c.Close() }
	return s
}

// rearm makes a connection that carried a request ready to wait in the
// pool again. The previous watch has ended (claim waited for it).
func (s *serverConn) rearm() {
	s.since = time.Now()
	s.done = make(chan struct{})
	s.n, s.err = 0, nil
}

// watch runs the idle Read; onDead is called if it ended for any reason
// other than claim interrupting it.
func (s *serverConn) watch(onDead func(*serverConn)) {
	var b [1]byte
	s.n, s.err = s.conn.Read(b[:])
	// Decided before done is closed: once it is, claim may hand the
	// connection on, to be rearmed for its next idle spell.
	dead := s.n > 0 || !isTimeout(s.err)
	close(s.done)
	if dead {
		onDead(s)
	}
}

// claim stops the idle Read (by moving the read deadline to now) and
// reports whether the connection is still usable: the Read must have ended
// by that deadline, with no data. A TLS read interrupted by a deadline
// leaves the connection usable (crypto/tls treats it as temporary).
func (s *serverConn) claim() bool {
	s.conn.SetReadDeadline(time.Now())
	<-s.done
	if s.n > 0 || !isTimeout(s.err) {
		return false
	}
	s.conn.SetReadDeadline(time.Time{})
	return true
}

// deadReason describes why an idle connection was found unusable.
func (s *serverConn) deadReason() string {
	if s.n > 0 {
		return "the server sent data before any request (§1.4)"
	}
	if s.err != nil {
		return s.err.Error()
	}
	return "closed"
}

// pool holds idle server connections, oldest first, and the clients waiting
// for one, in arrival order. Each client gets the oldest live connection.
type pool struct {
	max        int
	maxWaiting int // 0: no bound
	log        *slog.Logger
	m          *metrics

	mu      sync.Mutex
	idle    []*serverConn
	waiters []chan *serverConn
	closed  bool
}

// add offers a fresh server connection: to the longest-waiting client if
// there is one, else to the idle list. It closes the connection if the pool
// is closed or already holds max idle connections.
func (p *pool) add(s *serverConn) {
	go s.watch(p.dead)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		s.release()
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.m.waiting.Dec()
		w <- s // buffered; the waiter claims it
		p.mu.Unlock()
		return
	}
	if len(p.idle) >= p.max {
		p.mu.Unlock()
		p.m.serverRefused.WithLabelValues(RefusedPoolFull).Inc()
		p.log.Warn("server connection refused: the idle pool is full", "server_addr", s.remote, "max_idle_servers", p.max)
		s.release()
		return
	}
	p.idle = append(p.idle, s)
	p.m.idle.Set(float64(len(p.idle)))
	p.mu.Unlock()
}

// readd returns a connection that carried a request, ended cleanly, to
// the pool (as add does for a fresh one).
func (p *pool) readd(s *serverConn) {
	s.rearm()
	p.add(s)
}

// dead removes a connection whose idle Read ended by itself.
func (p *pool) dead(s *serverConn) {
	p.mu.Lock()
	i := slices.Index(p.idle, s)
	if i >= 0 {
		p.idle = slices.Delete(p.idle, i, i+1)
		p.m.idle.Set(float64(len(p.idle)))
	}
	p.mu.Unlock()
	if i >= 0 {
		p.log.Info("idle server connection lost", "server_addr", s.remote, "reason", s.deadReason(), "idle_for", time.Since(s.since).Round(time.Millisecond).String())
		s.release()
	}
}

// get returns a live idle server connection, waiting up to timeout for one
// (zero or negative: no wait). Connections that died while idle are closed
// and skipped.
func (p *pool) get(timeout time.Duration) (*serverConn, error) {
	timer := time.NewTimer(max(timeout, 0))
	defer timer.Stop()
	for {
		var s *serverConn
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errClosed
		}
		if len(p.idle) > 0 {
			s = p.idle[0]
			p.idle = p.idle[1:]
			p.m.idle.Set(float64(len(p.idle)))
			p.mu.Unlock()
		} else {
			if p.maxWaiting > 0 && len(p.waiters) >= p.maxWaiting {
				p.mu.Unlock()
				return nil, errTooManyWaiting
			}
			w := make(chan *serverConn, 1)
			p.waiters = append(p.waiters, w)
			p.m.waiting.Inc()
			p.mu.Unlock()
			select {
			case s = <-w:
			case <-timer.C:
				p.mu.Lock()
				i := slices.Index(p.waiters, w)
				if i >= 0 {
					p.waiters = slices.Delete(p.waiters, i, i+1)
					p.m.waiting.Dec()
				}
				p.mu.Unlock()
				if i >= 0 {
					return nil, errPairingTimeout
				}
				s = <-w // handed over just as the time ran out: take it
			}
			if s == nil {
				return nil, errClosed
			}
		}
		if s.claim() {
			return s, nil
		}
		p.log.Info("idle server connection skipped: it died while idle", "server_addr", s.remote, "reason", s.deadReason())
		s.release()
	}
}

// close refuses further connections, closes the idle ones and wakes every
// waiting client with errClosed.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle, waiters := p.idle, p.waiters
	p.idle, p.waiters = nil, nil
	p.m.idle.Set(0)
	p.m.waiting.Sub(float64(len(waiters)))
	p.mu.Unlock()
	for _, w := range waiters {
		w <- nil
	}
	for _, s := range idle {
		s.release()
	}
}
