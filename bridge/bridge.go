// Package bridge is signet's bridge role (PROTOCOL-v1 §1, §4.2, §15.2): it
// accepts clients on one TLS listener and servers on another (servers dial
// in and wait), pairs each validated client request with an idle server
// connection, and forwards the request, the inner TLS session, the reply
// and the sign-rpms sub-phase in the reference bridge's chunk layout
// (§2.5). It never holds a key or a secret: those travel in the inner
// session, which it relays without reading, and the replies are MACed under
// keys it never sees.
//
// What it refuses (by dropping the connection, the only refusal protocol v1
// has, §6.6): requests that fail the §4.4 whitelist or limits, requests whose
// user field is not the client certificate's CN (unless configured
// otherwise), and requests that need Koji when no Koji instance is
// configured.
//
// With Koji instances configured (koji.go), it fetches the RPMs a sign-rpm
// or sign-rpms request names by NEVRA from Koji's topurl, checks their
// size and MD5 against Koji and rpm-sigmd5, forwards them whole, and after
// the server signs imports the signature header into Koji, logged in with
// its own certificate on behalf of the requesting user. A Koji failure
// before signing is answered KOJI_ERROR by the server (the bridge forwards
// a protocol.KojiErrorPayload in place of the RPM); one after signing
// cannot be answered in-band (the status is under the server's MAC) and
// drops the connection, as Sigul's bridge does.
//
// A signet server that negotiates the reuse extension (ALPN
// protocol.ReuseALPN, offered unless Config.NoServerReuse) keeps its
// connection for request after request: after a request that ended
// cleanly (both sides' EOF markers and nothing else) the connection goes
// back to the idle pool, up to Config.MaxRequestsPerServerConn requests.
// Servers that do not ask for it, such as Sigul's, and every client get
// one request per connection.
package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signet-project/signet/protocol"
)

// Defaults for Config.
const (
	DefaultPairingTimeout   = 30 * time.Second
	DefaultMaxIdleServers   = 64
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultClientTimeout    = 2 * time.Minute
	DefaultServerTimeout    = 15 * time.Minute
	DefaultMaxReplyPayload  = protocol.TiB
	// DefaultMaxRequestsPerServerConn is the default bound on the
	// requests one server connection carries with the reuse extension.
	DefaultMaxRequestsPerServerConn = 1000
)

// Config configures a Bridge. Certificate and CA are required.
type Config struct {
	// Certificate is the bridge's certificate, presented on both
	// listeners (§1.2). It needs the serverAuth usage if it has EKUs.
	Certificate tls.Certificate
	// CA holds the certificates that client and server certificates must
	// chain to. Both listeners require a certificate (§1.2, §15.2).
	CA *x509.CertPool
	// ServerNames are the signing servers' identities. The server port
	// accepts only a certificate whose CN or one of whose DNS names is in
	// the list (without regard to case); the client port refuses such a
	// certificate, so that a server's certificate cannot act as a client.
	// Required: New refuses an empty list.
	ServerNames []string

	// PairingTimeout bounds how long a validated client request waits for
	// an idle server connection before the client is dropped (default
	// 30 s). Protocol v1 has no in-band error (§6.6): the client only sees
	// its connection close.
	PairingTimeout time.Duration
	// MaxIdleServers caps the idle server connections kept; server
	// connections beyond it are closed (default 64).
	MaxIdleServers int
	// NoServerReuse keeps the server port from offering the reuse
	// extension (protocol.ReuseALPN), so that every server connection
	// carries one request, as with Sigul's bridge. With it offered (the
	// default), a signet server that asks for it keeps its connection
	// for request after request; servers that do not ask (Sigul's) are
	// served as before.
	NoServerReuse bool
	// MaxRequestsPerServerConn bounds the requests one reused server
	// connection carries; after the last the bridge closes it, and the
	// server dials a new one (default 1000).
	MaxRequestsPerServerConn int

	// ProxyCNs are client certificate CNs allowed to send requests for any
	// user. Everybody else must have CN equal to the request's user field.
	ProxyCNs []string
	// LenientCN skips the CN check for everybody. The server still makes
	// its own check on the inner certificate (§1.3).
	LenientCN bool

	// OpLimits lowers the payload limit of §4.4 for the named operations.
	// A limit above the table's is refused by New.
	OpLimits map[string]uint64
	// MaxReplyPayload bounds a reply or sub-reply payload from the server
	// (default 1 TiB; the bridge streams, it does not buffer).
	MaxReplyPayload uint64
	// MaxRPMsPayloads bounds the sum of a sign-rpms connection's
	// sub-request payloads, each rounded up to 4 KiB (default 10 GiB,
	// §7.11).
	MaxRPMsPayloads uint64

	// HandshakeTimeout bounds each outer TLS handshake (default 10 s).
	HandshakeTimeout time.Duration
	// ClientTimeout bounds each read from and write to a client (default
	// 2 min): a client that sends or accepts nothing for that long is
	// dropped. It also bounds the final drain (§2.7).
	ClientTimeout time.Duration
	// ServerTimeout bounds each read from and write to a server once it
	// carries a request (default 15 min). It must cover the longest
	// operation (§10: key generation, large RPMs); idle server connections
	// have no timeout.
	ServerTimeout time.Duration

	// MaxRequestsPerCN caps the requests one client certificate CN may
	// have open at once, from its TLS handshake to the end of its
	// connection (default 4); RequestsPerCN sets it for named CNs (a
	// robot that signs in parallel; keys are compared without regard to
	// case). A connection over the cap is dropped at once.
	MaxRequestsPerCN int
	RequestsPerCN    map[string]int
	// MinTransferRate is the least a client must send, and read, in bytes
	// per second of the time the bridge spends waiting for it, once
	// TransferGrace of such waiting is used up (defaults 32 KiB/s, 10 s).
	// It applies while the client sends its request and payloads, and
	// whenever the bridge waits to write to it; not while the client
	// waits for the server. Negative: no minimum.
	MinTransferRate int64
	TransferGrace   time.Duration
	// RequestTimeout bounds a client connection from its TLS handshake to
	// its end, whatever the rate (default 30 min, the server's own bound).
	RequestTimeout time.Duration
	// MaxHandshakes caps the TLS handshakes in progress on each port
	// (default 64), and MaxHandshakesPerIP those from one client address
	// on the client port (default 8). A connection over a cap is closed at
	// once.
	MaxHandshakes, MaxHandshakesPerIP int
	// MaxPendingPairings caps the validated requests waiting for a server
	// connection (default 64); beyond it a request is dropped at once.
	MaxPendingPairings int

	// Koji are the Koji instances by name (koji-instance; a request that
	// names none uses the only one, or the one called "default"). Without
	// any, requests that need Koji are dropped.
	Koji map[string]KojiInstance

	// Logger receives one JSON-friendly record per request and per
	// connection event. Default: JSON to standard error.
	Logger *slog.Logger
}

// Bridge relays requests between clients and servers. Create it with New,
// run it with Serve, stop it with Shutdown.
type Bridge struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	pool *pool
	tls  *tls.Config
	// serverTLS is tls for the server port: it also offers the reuse
	// extension, unless NoServerReuse.
	serverTLS *tls.Config
	lim       *limiter

	mu         sync.Mutex
	shutting   bool
	listeners  []net.Listener
	conns      map[net.Conn]struct{} // every open connection, for a forced stop
	metricsSrv *http.Server
	wg         sync.WaitGroup // connection handlers
}

// Effective checks c and returns it with every unset limit and timeout
// replaced by its default: the settings a Bridge made from c runs with.
func (c Config) Effective() (Config, error) {
	cfg := c
	if len(cfg.Certificate.Certificate) == 0 || cfg.Certificate.PrivateKey == nil {
		return cfg, errors.New("bridge: no certificate and key configured")
	}
	if cfg.CA == nil {
		return cfg, errors.New("bridge: no CA configured: client and server certificates could not be checked")
	}
	cfg.ServerNames = slices.DeleteFunc(slices.Clone(cfg.ServerNames), func(n string) bool { return strings.TrimSpace(n) == "" })
	if len(cfg.ServerNames) == 0 {
		return cfg, errors.New("bridge: no server names configured: list the signing servers' certificate names (CN or DNS name) in server_names; without them any certificate the CA issued could pose as a server")
	}
	for name, k := range cfg.Koji {
		if name == "" || !protocol.IsSafeString(name) {
			return cfg, fmt.Errorf("bridge: Koji instance name %q is not a safe string", name)
		}
		for what, u := range map[string]string{"hub": k.HubURL, "topurl": k.TopURL} {
			pu, err := url.Parse(u)
			if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
				return cfg, fmt.Errorf("bridge: Koji instance %s: %s %q is not an http(s) URL", name, what, u)
			}
		}
	}
	for op, lim := range cfg.OpLimits {
		spec, ok := protocol.LookupOp(op)
		if !ok {
			return cfg, fmt.Errorf("bridge: payload limit for unknown operation %q", op)
		}
		if lim > spec.BridgeMaxPayload {
			return cfg, fmt.Errorf("bridge: payload limit %d for %s is above the protocol's %d; limits can only be lowered", lim, op, spec.BridgeMaxPayload)
		}
	}
	if cfg.PairingTimeout <= 0 {
		cfg.PairingTimeout = DefaultPairingTimeout
	}
	if cfg.MaxIdleServers <= 0 {
		cfg.MaxIdleServers = DefaultMaxIdleServers
	}
	if cfg.MaxRequestsPerServerConn <= 0 {
		cfg.MaxRequestsPerServerConn = DefaultMaxRequestsPerServerConn
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.ClientTimeout <= 0 {
		cfg.ClientTimeout = DefaultClientTimeout
	}
	if cfg.ServerTimeout <= 0 {
		cfg.ServerTimeout = DefaultServerTimeout
	}
	for _, d := range []struct {
		v   *int
		def int
	}{{&cfg.MaxRequestsPerCN, DefaultMaxRequestsPerCN}, {&cfg.MaxHandshakes, DefaultMaxHandshakes},
		{&cfg.MaxHandshakesPerIP, DefaultMaxHandshakesPerIP}, {&cfg.MaxPendingPairings, DefaultMaxPendingPairings}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	perCN := map[string]int{} // by lower-case CN: configuration keys lose their case
	for cn, n := range cfg.RequestsPerCN {
		if n <= 0 {
			return cfg, fmt.Errorf("bridge: requests_per_cn for %q is %d: it must be at least 1", cn, n)
		}
		perCN[strings.ToLower(cn)] = n
	}
	cfg.RequestsPerCN = perCN
	if cfg.MinTransferRate == 0 {
		cfg.MinTransferRate = DefaultMinTransferRate
	}
	if cfg.TransferGrace <= 0 {
		cfg.TransferGrace = DefaultTransferGrace
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxReplyPayload == 0 {
		cfg.MaxReplyPayload = DefaultMaxReplyPayload
	}
	if cfg.MaxRPMsPayloads == 0 {
		cfg.MaxRPMsPayloads = protocol.DefaultMaxRPMsPayloads
	}
	return cfg, nil
}

// New checks cfg, fills in defaults and returns a Bridge.
func New(cfg Config) (*Bridge, error) {
	cfg, err := cfg.Effective()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	m := newMetrics()
	b := &Bridge{
		cfg:   cfg,
		log:   log,
		m:     m,
		pool:  &pool{max: cfg.MaxIdleServers, maxWaiting: cfg.MaxPendingPairings, log: log, m: m},
		lim:   newLimiter(&cfg),
		conns: map[net.Conn]struct{}{},
		tls: &tls.Config{
			Certificates: []tls.Certificate{cfg.Certificate},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    cfg.CA,
			MinVersion:   tls.VersionTLS12, // §1.2: nothing below TLS 1.2
		},
	}
	b.serverTLS = b.tls
	if !cfg.NoServerReuse {
		// Only on the server port: the client leg stays one request per
		// connection.
		b.serverTLS = b.tls.Clone()
		b.serverTLS.NextProtos = []string{protocol.ReuseALPN}
	}
	return b, nil
}

// ErrClosed is returned by Serve when it is called after Shutdown.
var ErrClosed = errors.New("bridge: closed")

// Serve accepts clients on clientLn and servers on serverLn (plain TCP
// listeners; the bridge does TLS) until Shutdown, and then returns nil. An
// accept error other than a temporary one ends Serve with that error.
func (b *Bridge) Serve(clientLn, serverLn net.Listener) error {
	b.mu.Lock()
	if b.shutting {
		b.mu.Unlock()
		clientLn.Close()
		serverLn.Close()
		return ErrClosed
	}
	b.listeners = append(b.listeners, clientLn, serverLn)
	b.mu.Unlock()
	b.log.Info("bridge listening", "client_listen", clientLn.Addr().String(), "server_listen", serverLn.Addr().String(),
		"server_names", b.cfg.ServerNames)
	errc := make(chan error, 2)
	go func() {
		errc <- b.acceptLoop(clientLn, func(c net.Conn) bool { b.handleClient(c); return false })
	}()
	go func() { errc <- b.acceptLoop(serverLn, b.handleServer) }()
	err := <-errc
	if err != nil {
		clientLn.Close()
		serverLn.Close()
	}
	return errors.Join(err, <-errc)
}

// acceptLoop runs handle for each accepted connection; handle returns
// true if it handed the connection on (to the idle pool) instead of being
// done with it.
func (b *Bridge) acceptLoop(ln net.Listener, handle func(net.Conn) bool) error {
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			b.mu.Lock()
			shutting := b.shutting
			b.mu.Unlock()
			if shutting {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				b.log.Warn("accept failed, retrying", "listen", ln.Addr().String(), "err", err)
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			return fmt.Errorf("bridge: accepting on %s: %w", ln.Addr(), err)
		}
		backoff = 5 * time.Millisecond
		if !b.track(c) {
			c.Close()
			continue
		}
		go func() {
			defer b.wg.Done()
			if !handle(c) {
				b.untrack(c)
			}
		}()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track registers a new connection and its handler; false after Shutdown.
func (b *Bridge) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shutting {
		return false
	}
	b.conns[c] = struct{}{}
	b.wg.Add(1)
	return true
}

func (b *Bridge) untrack(c net.Conn) {
	c.Close()
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// handleServer completes a server's TLS handshake (the server checks the
// bridge certificate; the bridge checks that the server's chains to the
// CA and names one of ServerNames) and puts the connection into the idle
// pool. It returns true when the pool took the connection; it stays
// tracked (for a forced Shutdown) until closed.
func (b *Bridge) handleServer(raw net.Conn) bool {
	limit, release := b.tryHandshake(true, raw.RemoteAddr())
	if limit != "" {
		b.m.limitHit(limit)
		b.m.serverRefused.WithLabelValues(RefusedHandshake).Inc()
		b.log.Warn("server connection refused: too many TLS handshakes in progress", "server_addr", raw.RemoteAddr().String(),
			"max_handshakes", b.cfg.MaxHandshakes)
		return false
	}
	tc := tls.Server(raw, b.serverTLS)
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	release()
	if err != nil {
		b.m.serverRefused.WithLabelValues(RefusedHandshake).Inc()
		b.log.Warn("server TLS handshake failed", "server_addr", raw.RemoteAddr().String(), "err", err)
		return false
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	name := matchServerName(leaf, b.cfg.ServerNames)
	if name == "" {
		b.m.serverRefused.WithLabelValues(RefusedIdentity).Inc()
		b.log.Warn("server connection refused: its certificate names none of server_names",
			"server_addr", raw.RemoteAddr().String(), "cert_cn", leaf.Subject.CommonName, "cert_dns_names", leaf.DNSNames,
			"server_names", b.cfg.ServerNames)
		tc.Close()
		return false
	}
	s := newServerConn(tc)
	s.reuse = tc.ConnectionState().NegotiatedProtocol == protocol.ReuseALPN
	b.log.Debug("server connected", "server_addr", raw.RemoteAddr().String(), "server_cn", leaf.Subject.CommonName, "server_name", name,
		"reuse", s.reuse)
	s.release = func() {
		tc.Close()
		b.untrack(raw)
	}
	b.pool.add(s)
	return true
}

// Shutdown stops accepting on both listeners, closes idle server
// connections, drops clients still waiting for a server, and waits for
// the requests in flight to finish. If ctx ends first, it closes every
// remaining connection and returns ctx's error.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.shutting = true
	lns := b.listeners
	b.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	b.pool.close()
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		b.mu.Lock()
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		<-done
	}
	b.stopMetrics(ctx)
	return err
}
