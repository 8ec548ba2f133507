// Command signet-bridge is signet's bridge role: it accepts signet and
// Sigul clients on one port and signet servers (which dial in) on another,
// checks each request, pairs it with an idle server connection and relays
// it without being able to read its secrets (see package bridge).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/signet-project/signet/bridge"
	"github.com/signet-project/signet/cmd/internal/health"
	"github.com/signet-project/signet/cmd/internal/tlsfiles"
	"github.com/signet-project/signet/cmd/internal/version"
	"github.com/signet-project/signet/internal/fileperm"
	"github.com/signet-project/signet/internal/koji"
	"github.com/signet-project/signet/internal/metricsserver"
	"github.com/signet-project/signet/protocol"
)

const defaultConfig = "/etc/signet/bridge.toml"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "signet-bridge:", err)
		os.Exit(health.ExitCode(err))
	}
}

const configHelp = `Configuration (TOML, --config; default ` + defaultConfig + ` if it exists):

  client_listen     = ":44334"          clients connect here (Sigul's default port)
  server_listen     = ":44333"          servers dial in here
  metrics_listen    = "127.0.0.1:9334"  Prometheus /metrics; loopback only; empty: off
  server_names      = ["signer.example.org"]
                                        required: the signing servers' certificate
                                        names (CN or DNS name). Only these may dial
                                        in as servers, and they may not act as clients
  pairing_timeout   = "30s"             a client waits this long for a free server
  max_idle_servers  = 64                idle server connections kept
  server_reuse      = true              offer signet servers the extension that lets one
                                        server connection carry request after request
                                        (ALPN signet-reuse/1); false: one request per
                                        connection, as with Sigul's bridge
  max_requests_per_server_connection = 1000
                                        requests one reused server connection carries
  proxy_cns         = ["robosignatory"] certificate CNs that may name any user
  lenient_cn        = false             skip the CN = user check for everyone
  handshake_timeout = "10s"             each outer TLS handshake
  client_timeout    = "2m"              a client silent (or not reading) this long is dropped
  server_timeout    = "15m"             a busy server silent this long is dropped;
                                        must cover the slowest operation
  shutdown_timeout  = "60s"             SIGTERM/SIGINT: requests in flight get this long
  request_timeout   = "30m"             a whole request, whatever its rate
  min_transfer_rate = 32768             bytes/s a client must keep while the bridge waits
                                        to read its request or to write to it; -1: none
  transfer_grace    = "10s"             waiting allowed before the minimum applies
  max_requests_per_cn  = 4              requests one certificate CN may have open
  max_handshakes       = 64             TLS handshakes in progress, per port
  max_handshakes_per_ip = 8             client-port handshakes from one address
  max_pending_pairings = 64             requests waiting for a free server
  max_reply_payload = 1099511627776     bytes, a reply or sub-reply payload
  max_rpms_payloads = 10737418240       bytes, all sub-requests of one sign-rpms
  log_level         = "info"            debug, info, warn or error (JSON on stderr)

  [tls]
  cert = "/etc/signet/bridge.crt"       the bridge's certificate chain (PEM), both ports
  key  = "/etc/signet/bridge.key"
  ca   = "/etc/signet/ca.crt"           client and server certificates must chain to it

  [limits]                              optional: lower an operation's payload limit
  sign-data = 1073741824                (bytes; PROTOCOL-v1 §4.4 limits cannot be raised)

  [requests_per_cn]                     optional: max_requests_per_cn for named CNs
  robosignatory = 16

Every limit that is hit is counted in signet_bridge_limits_hit_total{limit=...}.

  [koji.NAME]                           optional: a Koji instance (the clients' -k NAME;
                                        without -k, the only one or the one named default)
  hub     = "https://koji.example.org/kojihub"
  topurl  = "https://kojipkgs.example.org"  where the RPMs are downloaded from
  cert    = "/etc/signet/koji-bridge.pem"   the bridge's Koji client certificate (PEM);
  key     = ""                          its key, if not in cert; the hub must list the
                                        certificate in ProxyDNs: the bridge logs in
                                        on behalf of each requesting user
  ca      = "/etc/signet/koji-ca.crt"   the CA of the hub's certificate
  timeout = "10m"                       each hub call and each download

Requests that need Koji (koji-instance, import-signature, sign-rpm or a
sign-rpms sub-request without the RPM) are refused when no [koji.NAME] is
configured. With one, the bridge fetches the RPMs the clients name by NEVRA,
checks their size and MD5, and imports the signatures (queryRPMSigs,
addRPMSig); a Koji failure before signing is answered KOJI_ERROR.`

type app struct {
	v   *viper.Viper
	cfg *config // decoded from v by loadConfig
}

func newRoot() *cobra.Command {
	a := &app{v: viper.New()}
	root := &cobra.Command{
		Use:   "signet-bridge",
		Short: "signet's bridge: pairs clients with signing servers and relays requests",
		Long: `signet-bridge sits between clients (signet, Sigul 1.x) and signet servers.
It speaks Sigul protocol v1. It listens on two ports: clients connect to one,
servers dial in to the other and wait. Each client request is checked (client
certificate, CN against the user field, the operation's fields and size limit)
and paired with an idle server connection; the bridge then relays it. Secrets
travel in a TLS session nested inside the client's, which the bridge cannot
read, and replies are MACed with keys it never sees.

` + configHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.loadConfig(cmd)
		},
	}
	f := root.PersistentFlags()
	f.String("config", "", "configuration file (TOML; default "+defaultConfig+" if it exists)")
	f.String("client-listen", "", "client address, host:port (config: client_listen; default :44334)")
	f.String("server-listen", "", "server address, host:port (config: server_listen; default :44333)")
	f.String("metrics-listen", "", "metrics address, loopback only (config: metrics_listen)")
	f.String("log-level", "", "debug, info, warn or error (config: log_level; default info)")
	for _, k := range []string{"client-listen", "server-listen", "metrics-listen", "log-level"} {
		a.v.BindPFlag(strings.ReplaceAll(k, "-", "_"), f.Lookup(k))
	}
	root.AddCommand(a.runCmd(), a.checkCmd(), a.statusCmd())
	version.Setup(root)
	return root
}

func (a *app) loadConfig(cmd *cobra.Command) error {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		if _, err := os.Stat(defaultConfig); err == nil {
			path = defaultConfig
		}
	}
	return a.decodeConfig(path)
}

func (a *app) runCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the bridge until SIGTERM or SIGINT",
		Long: `run listens on the client and server ports and relays requests until it
receives SIGTERM or SIGINT. It then stops accepting on both ports, closes idle
server connections, lets the requests in flight finish (up to shutdown_timeout)
and exits.

` + configHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.run(cmd.Context()) },
	}
}

func (a *app) checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check-config",
		Short: "Check the configuration and certificates, then exit",
		Long: `check-config loads the configuration, the certificate, key and CA, checks
every value (including that metrics_listen is a loopback address), and prints
the effective settings. It opens no port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.settings(nil)
			if err != nil {
				return err
			}
			// What the bridge would run with: unset values are shown as
			// their defaults, not as zero.
			eff, err := s.cfg.Effective()
			if err != nil {
				return err
			}
			s.cfg = eff
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "client_listen     %s\n", s.clientListen)
			fmt.Fprintf(out, "server_listen     %s\n", s.serverListen)
			fmt.Fprintf(out, "metrics_listen    %s\n", orNone(s.metricsListen))
			fmt.Fprintf(out, "server_names      %s\n", strings.Join(s.cfg.ServerNames, ", "))
			fmt.Fprintf(out, "pairing_timeout   %s\n", s.cfg.PairingTimeout)
			fmt.Fprintf(out, "handshake_timeout %s\n", s.cfg.HandshakeTimeout)
			fmt.Fprintf(out, "max_idle_servers  %d\n", s.cfg.MaxIdleServers)
			fmt.Fprintf(out, "server_reuse      %t\n", !s.cfg.NoServerReuse)
			fmt.Fprintf(out, "max_requests_per_server_connection %d\n", s.cfg.MaxRequestsPerServerConn)
			fmt.Fprintf(out, "proxy_cns         %s\n", orNone(strings.Join(s.cfg.ProxyCNs, ", ")))
			fmt.Fprintf(out, "lenient_cn        %t\n", s.cfg.LenientCN)
			fmt.Fprintf(out, "client_timeout    %s\n", s.cfg.ClientTimeout)
			fmt.Fprintf(out, "server_timeout    %s\n", s.cfg.ServerTimeout)
			fmt.Fprintf(out, "request_timeout   %s\n", s.cfg.RequestTimeout)
			fmt.Fprintf(out, "min_transfer_rate %d\n", s.cfg.MinTransferRate)
			fmt.Fprintf(out, "transfer_grace    %s\n", s.cfg.TransferGrace)
			fmt.Fprintf(out, "max_requests_per_cn   %d\n", s.cfg.MaxRequestsPerCN)
			for _, cn := range slices.Sorted(maps.Keys(s.cfg.RequestsPerCN)) {
				fmt.Fprintf(out, "requests_per_cn %s %d\n", cn, s.cfg.RequestsPerCN[cn])
			}
			fmt.Fprintf(out, "max_handshakes        %d\n", s.cfg.MaxHandshakes)
			fmt.Fprintf(out, "max_handshakes_per_ip %d\n", s.cfg.MaxHandshakesPerIP)
			fmt.Fprintf(out, "max_pending_pairings  %d\n", s.cfg.MaxPendingPairings)
			for _, op := range slices.Sorted(maps.Keys(s.cfg.OpLimits)) {
				fmt.Fprintf(out, "limit %-11s %d\n", op, s.cfg.OpLimits[op])
			}
			for _, name := range slices.Sorted(maps.Keys(s.cfg.Koji)) {
				k := s.cfg.Koji[name]
				fmt.Fprintf(out, "koji %s hub %s topurl %s\n", name, k.HubURL, k.TopURL)
			}
			fmt.Fprintln(out, "configuration OK")
			return nil
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// settings is the checked configuration.
type settings struct {
	cfg                                       bridge.Config
	clientListen, serverListen, metricsListen string
	shutdownTimeout                           time.Duration
}

func (a *app) settings(log *slog.Logger) (*settings, error) {
	c := a.cfg
	cert, pool, err := tlsfiles.Load(c.TLS.Cert, c.TLS.Key, c.TLS.CA)
	if err != nil {
		return nil, err
	}
	s := &settings{
		clientListen:  c.ClientListen,
		serverListen:  c.ServerListen,
		metricsListen: c.MetricsListen,
	}
	if s.clientListen == "" {
		s.clientListen = ":44334"
	}
	if s.serverListen == "" {
		s.serverListen = ":44333"
	}
	if s.metricsListen != "" {
		if err := metricsserver.CheckLoopback(s.metricsListen); err != nil {
			return nil, err
		}
	}
	s.cfg = bridge.Config{Certificate: cert, CA: pool, ServerNames: c.ServerNames, LenientCN: c.LenientCN,
		ProxyCNs: c.ProxyCNs, MaxIdleServers: c.MaxIdleServers, Logger: log,
		NoServerReuse: c.ServerReuse != nil && !*c.ServerReuse}
	for _, d := range []struct {
		key string
		raw string
		dst *time.Duration
	}{
		{"pairing_timeout", c.PairingTimeout, &s.cfg.PairingTimeout}, {"handshake_timeout", c.HandshakeTimeout, &s.cfg.HandshakeTimeout},
		{"client_timeout", c.ClientTimeout, &s.cfg.ClientTimeout}, {"server_timeout", c.ServerTimeout, &s.cfg.ServerTimeout},
		{"shutdown_timeout", c.ShutdownTimeout, &s.shutdownTimeout},
		{"request_timeout", c.RequestTimeout, &s.cfg.RequestTimeout}, {"transfer_grace", c.TransferGrace, &s.cfg.TransferGrace},
	} {
		if *d.dst, err = duration(d.key, d.raw); err != nil {
			return nil, err
		}
	}
	for _, n := range []struct {
		key string
		raw *int
		dst *int
	}{
		{"max_requests_per_cn", c.MaxRequestsPerCN, &s.cfg.MaxRequestsPerCN}, {"max_handshakes", c.MaxHandshakes, &s.cfg.MaxHandshakes},
		{"max_requests_per_server_connection", c.MaxRequestsPerServerConnection, &s.cfg.MaxRequestsPerServerConn},
		{"max_handshakes_per_ip", c.MaxHandshakesPerIP, &s.cfg.MaxHandshakesPerIP}, {"max_pending_pairings", c.MaxPendingPairings, &s.cfg.MaxPendingPairings},
	} {
		if n.raw != nil {
			if *n.raw <= 0 {
				return nil, fmt.Errorf("configuration %s = %d: must be a positive number", n.key, *n.raw)
			}
			*n.dst = *n.raw
		}
	}
	if r := c.MinTransferRate; r != nil {
		if *r == 0 || *r < -1 {
			return nil, fmt.Errorf("configuration min_transfer_rate = %d: bytes per second (a positive integer), or -1 for no minimum", *r)
		}
		s.cfg.MinTransferRate = *r
	}
	for cn, n := range c.RequestsPerCN {
		if n <= 0 {
			return nil, fmt.Errorf("configuration [requests_per_cn] %s = %d: must be a positive number", cn, n)
		}
	}
	s.cfg.RequestsPerCN = c.RequestsPerCN
	if s.shutdownTimeout == 0 {
		s.shutdownTimeout = 60 * time.Second
	}
	for key, p := range map[string]struct {
		raw *int64
		dst *uint64
	}{"max_reply_payload": {c.MaxReplyPayload, &s.cfg.MaxReplyPayload}, "max_rpms_payloads": {c.MaxRPMsPayloads, &s.cfg.MaxRPMsPayloads}} {
		if p.raw != nil {
			if *p.dst, err = size(*p.raw, key); err != nil {
				return nil, err
			}
		}
	}
	if len(c.Limits) > 0 {
		s.cfg.OpLimits = map[string]uint64{}
		for op, val := range c.Limits {
			if _, ok := protocol.LookupOp(op); !ok {
				return nil, fmt.Errorf("configuration [limits]: %q is not a protocol v1 operation", op)
			}
			if s.cfg.OpLimits[op], err = size(val, "limits."+op); err != nil {
				return nil, err
			}
		}
	}
	if len(c.Koji) > 0 {
		s.cfg.Koji = map[string]bridge.KojiInstance{}
		for name, k := range c.Koji {
			if k.Hub == "" || k.TopURL == "" || k.Cert == "" {
				return nil, fmt.Errorf("configuration [koji.%s] needs hub, topurl and cert (the bridge's certificate, with which it logs in for the users)", name)
			}
			keyFile := k.Key
			if keyFile == "" {
				keyFile = k.Cert
			}
			if err := fileperm.CheckPrivate(keyFile, "Koji client key file"); err != nil {
				return nil, fmt.Errorf("configuration [koji.%s]: %w", name, err)
			}
			conf, err := koji.TLSConfig(k.CA, k.Cert, k.Key)
			if err != nil {
				return nil, fmt.Errorf("configuration [koji.%s]: %w", name, err)
			}
			t, err := duration("koji."+name+".timeout", k.Timeout)
			if err != nil {
				return nil, err
			}
			s.cfg.Koji[name] = bridge.KojiInstance{HubURL: k.Hub, TopURL: k.TopURL, TLS: conf, Timeout: t}
		}
	}
	if s.cfg.MaxIdleServers < 0 {
		return nil, fmt.Errorf("configuration max_idle_servers = %d: must be positive", s.cfg.MaxIdleServers)
	}
	// New checks the rest (limits above the protocol's, missing pieces).
	if _, err := bridge.New(s.cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// duration reads a duration written as a string ("30s", "2m"); "" is 0.
func duration(key, str string) (time.Duration, error) {
	if str == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(str)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("configuration %s = %q: not a duration such as \"30s\" or \"2m\"", key, str)
	}
	return d, nil
}

// size reads a byte count, a non-negative integer.
func size(n int64, key string) (uint64, error) {
	if n < 0 {
		return 0, fmt.Errorf("configuration %s: must be a number of bytes (a non-negative integer)", key)
	}
	return uint64(n), nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("configuration log_level %q: use debug, info, warn or error", level)
		}
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func (a *app) run(ctx context.Context) error {
	log, err := newLogger(a.cfg.LogLevel)
	if err != nil {
		return err
	}
	s, err := a.settings(log)
	if err != nil {
		return err
	}
	b, err := bridge.New(s.cfg)
	if err != nil {
		return err
	}
	var mln net.Listener
	if s.metricsListen != "" {
		if mln, err = metricsserver.Listen(s.metricsListen); err != nil {
			return err
		}
	}
	cl, err := net.Listen("tcp", s.clientListen)
	if err != nil {
		if mln != nil {
			mln.Close()
		}
		return err
	}
	sl, err := net.Listen("tcp", s.serverListen)
	if err != nil {
		cl.Close()
		if mln != nil {
			mln.Close()
		}
		return err
	}
	if mln != nil {
		go func() {
			if err := b.ServeMetrics(mln); err != nil {
				log.Error("metrics endpoint failed", "err", err)
			}
		}()
		log.Info("metrics endpoint listening", "metrics_listen", mln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(cl, sl) }()
	notifyReady(ctx, cl.Addr().String(), sl.Addr().String(), log)
	select {
	case err = <-errc:
		sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
		b.Shutdown(sctx)
		cancel()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: no new connections; requests in flight may finish", "shutdown_timeout", s.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	serr := b.Shutdown(sctx)
	err = <-errc
	if serr != nil {
		log.Warn("shutdown timeout reached: remaining connections closed", "err", serr)
	}
	log.Info("signet-bridge stopped")
	return err
}
