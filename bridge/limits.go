package bridge

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on what one certificate holder, or anyone who can open a TCP
// connection, can take from the bridge (issue 11, finding 5). SECURITY.md
// says what each defends against and what remains possible.

// Defaults for the limits in Config.
const (
	DefaultMaxRequestsPerCN   = 4
	DefaultMinTransferRate    = 32 << 10 // bytes per second
	DefaultTransferGrace      = 10 * time.Second
	DefaultRequestTimeout     = 30 * time.Minute
	DefaultMaxHandshakes      = 64
	DefaultMaxHandshakesPerIP = 8
	DefaultMaxPendingPairings = 64
)

// Limit names, the values of the limit label of
// signet_bridge_limits_hit_total.
const (
	LimitRequestsPerCN      = "requests_per_cn"      // a CN already has its maximum of requests open
	LimitMinTransferRate    = "min_transfer_rate"    // a client sent or read too slowly
	LimitRequestTimeout     = "request_timeout"      // a request ran past its overall deadline
	LimitClientHandshakes   = "client_handshakes"    // the client port's handshake slots were all taken
	LimitClientIPHandshakes = "client_ip_handshakes" // one address held its share of client handshakes
	LimitServerHandshakes   = "server_handshakes"    // the server port's handshake slots were all taken
	LimitPendingPairings    = "pending_pairings"     // too many clients were already waiting for a server
)

var allLimits = []string{LimitRequestsPerCN, LimitMinTransferRate, LimitRequestTimeout, LimitClientHandshakes,
	LimitClientIPHandshakes, LimitServerHandshakes, LimitPendingPairings}

// slowError reports a client that kept less than the minimum transfer rate
// (after the grace period) while the bridge was waiting to read from it or
// write to it.
type slowError struct {
	op   string // "read" or "write"
	n    int64
	in   time.Duration
	rate int64
}

func (e *slowError) Error() string {
	verb := "sent"
	if e.op == "write" {
		verb = "read"
	}
	return fmt.Sprintf("bridge: the client %s %d bytes in %s of waiting, below the minimum of %d bytes/s", verb, e.n, e.in.Round(time.Millisecond), e.rate)
}

// deadlineError reports a request that reached its overall deadline.
type deadlineError struct{ d time.Duration }

func (e *deadlineError) Error() string {
	return fmt.Sprintf("bridge: the request ran past its overall deadline of %s", e.d)
}

// meter measures one direction of a client connection: the bytes moved
// and the time the bridge spent blocked waiting for the client to move
// them. Time spent while the bridge waits for the server (or does anything
// else) does not count against the client, so a busy server never makes a
// client look slow. While the meter is on, the client must keep, on
// average, at least rate bytes per second of that waiting time once the
// grace period is used up.
type meter struct {
	rate  int64 // bytes per second; 0: no minimum
	grace time.Duration

	on     atomic.Bool
	mu     sync.Mutex
	n      int64
	waited time.Duration
}

func newMeter(rate int64, grace time.Duration, on bool) *meter {
	m := &meter{rate: rate, grace: grace}
	m.on.Store(on)
	return m
}

// budget is how much longer the bridge may wait for the client's next
// bytes; ok is false when the meter is off or has no minimum.
func (m *meter) budget() (d time.Duration, ok bool) {
	if m == nil || m.rate <= 0 || !m.on.Load() {
		return 0, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	earned := time.Duration(float64(m.n) / float64(m.rate) * float64(time.Second))
	return m.grace + earned - m.waited, true
}

// add records n bytes moved after waiting d (counted only while on).
func (m *meter) add(n int, d time.Duration) {
	if m == nil || !m.on.Load() {
		return
	}
	m.mu.Lock()
	m.n += int64(n)
	m.waited += d
	m.mu.Unlock()
}

func (m *meter) slow(op string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &slowError{op: op, n: m.n, in: m.waited, rate: m.rate}
}

func (m *meter) set(on bool) {
	if m != nil {
		m.on.Store(on)
	}
}

// limiter holds the counters behind the per-CN and handshake limits.
type limiter struct {
	perCN    map[string]int // open requests by client certificate CN
	perIP    map[string]int // client handshakes in progress by address
	clientHS chan struct{}  // client handshake slots
	serverHS chan struct{}  // server handshake slots
	mu       sync.Mutex
}

func newLimiter(cfg *Config) *limiter {
	return &limiter{
		perCN:    map[string]int{},
		perIP:    map[string]int{},
		clientHS: make(chan struct{}, cfg.MaxHandshakes),
		serverHS: make(chan struct{}, cfg.MaxHandshakes),
	}
}

// tryHandshake takes a handshake slot of the port (and, on the client
// port, of the peer's address) without waiting; it returns the limit hit,
// or "" and a function that gives the slots back.
func (b *Bridge) tryHandshake(server bool, addr net.Addr) (string, func()) {
	l := b.lim
	slots, limit, g := l.clientHS, LimitClientHandshakes, b.m.handshakes.WithLabelValues("client")
	if server {
		slots, limit, g = l.serverHS, LimitServerHandshakes, b.m.handshakes.WithLabelValues("server")
	}
	select {
	case slots <- struct{}{}:
	default:
		return limit, nil
	}
	if server {
		g.Inc()
		return "", func() { g.Dec(); <-slots }
	}
	ip := addrIP(addr)
	l.mu.Lock()
	if l.perIP[ip] >= b.cfg.MaxHandshakesPerIP {
		l.mu.Unlock()
		<-slots
		return LimitClientIPHandshakes, nil
	}
	l.perIP[ip]++
	l.mu.Unlock()
	g.Inc()
	return "", func() {
		g.Dec()
		l.mu.Lock()
		if l.perIP[ip]--; l.perIP[ip] == 0 {
			delete(l.perIP, ip)
		}
		l.mu.Unlock()
		<-slots
	}
}

func addrIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// maxForCN is the number of concurrent requests cn may have open.
func (b *Bridge) maxForCN(cn string) int {
	if n, ok := b.cfg.RequestsPerCN[strings.ToLower(cn)]; ok {
		return n
	}
	return b.cfg.MaxRequestsPerCN
}

// enterCN counts a request of cn; false if cn already has its maximum.
func (b *Bridge) enterCN(cn string) bool {
	l := b.lim
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perCN[cn] >= b.maxForCN(cn) {
		return false
	}
	l.perCN[cn]++
	return true
}

func (b *Bridge) leaveCN(cn string) {
	l := b.lim
	l.mu.Lock()
	if l.perCN[cn]--; l.perCN[cn] <= 0 {
		delete(l.perCN, cn)
	}
	l.mu.Unlock()
}
