package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/signet-project/signet/cmd/internal/tlsfiles"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/internal/secret"
	"github.com/signet-project/signet/server"
)

func (a *app) runCmd() *cobra.Command {
	var askPIN bool
	var cpuProfile string
	c := &cobra.Command{
		Use:   "run",
		Short: "Serve requests: dial the configured bridges and answer what they pair",
		Long: `run is the signing server. It opens no listening socket: it dials every
configured bridge, keeps idle connections waiting there, and answers each
request a bridge pairs with one of them. Configuration (TOML, --config):

  database = "/var/lib/signet/signet.db"
  [token]   module, label or serial, max_sessions
  [tls]     cert, key: the server's certificate (outer TLS to the bridges and
            inner TLS to the clients); ca: the CA that issued the bridges'
            and the clients' certificates
  [[bridge]] address = "bridge.example.org:44334", server_name, idle = 2
  [server]  pin_file (optional: lets new-key and import-key run over the
            network), pin_credential (the same from a systemd credential:
            the file of that name in $CREDENTIALS_DIRECTORY), unwrap_cache = "5m", max_file_payload (bytes),
            spool_dir, metrics_file (node-exporter textfile),
            metrics_interval (how often it is rewritten, default "15s"),
            lenient_username_check, proxy_usernames, batch_workers
            (sign-rpms packages signed at once per connection; default
            the CPU count, at least 2), max_rpms_payloads (bytes per
            sign-rpms connection, default 10 GiB), reuse_connections
            (default true: offer a signet bridge the extension that lets
            one connection carry request after request; false: one
            request per connection, as with Sigul's bridge)

The token PIN, which only new-key and import-key need, comes from --pin-file,
--pin-fd, server.pin_credential, server.pin_file, or a prompt without echo with --ask-pin; it is
held in memory only. Without one the server still signs: each user's
passphrase unwraps the PIN from the database.

Under systemd (Type=notify) the server says READY=1 once every bridge holds
at least one of its connections; ` + "`signet-server status`" + ` reports health from
the metrics file.

SIGTERM or SIGINT stops dialing; requests in flight finish first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			return a.run(cmd.Context(), askPIN)
		},
	}
	c.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a Go CPU profile to this file until the server stops (for performance work)")
	c.Flags().MarkHidden("cpu-profile")
	c.Flags().BoolVar(&askPIN, "ask-pin", false, "prompt for the token PIN at start (enables new-key and import-key)")
	return c
}

func (a *app) run(ctx context.Context, askPIN bool) error {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg := a.cfg
	bridges := cfg.Bridge
	if len(bridges) == 0 {
		return server.ErrNoBridges
	}
	tlsCert, pool, err := tlsfiles.Load(cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA)
	if err != nil {
		return err
	}
	tok, err := hsm.Open(a.tokenConfig())
	if err != nil {
		return err
	}
	defer tok.Close()
	var pin []byte
	src := secret.Source{What: "token PIN", File: a.pinFile, FD: a.pinFD, Batch: true}
	if !src.Set() {
		if src.File, err = pinCredential(cfg.Server.PinCredential); err != nil {
			return err
		}
	}
	if !src.Set() {
		src.File = cfg.Server.PinFile
	}
	if !src.Set() && askPIN {
		src.Batch = false
	}
	if src.Set() || askPIN {
		if pin, err = src.Read(); err != nil {
			return err
		}
		defer clear(pin)
		if err := tok.Login(pin); err != nil {
			return err
		}
	}
	st, err := a.openStore(ctx, false)
	if err != nil {
		return err
	}
	defer st.Close()
	kdf := a.kdf()
	ttl := 5 * time.Minute
	if s := cfg.Server.UnwrapCache; s != "" {
		if ttl, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("server.unwrap_cache %q: %w", s, err)
		}
	}
	every := 15 * time.Second
	if s := cfg.Server.MetricsInterval; s != "" {
		if every, err = time.ParseDuration(s); err != nil || every < 100*time.Millisecond {
			return fmt.Errorf("server.metrics_interval %q: want a duration of at least 100ms", s)
		}
	}
	auth, err := server.NewAuthenticator(st, kdf, ttl)
	if err != nil {
		return err
	}
	auth.LenientUsernames = cfg.Server.LenientUsernameCheck
	auth.ProxyUsernames = cfg.Server.ProxyUsernames
	spool := cfg.Server.SpoolDir
	h := &server.Handlers{Store: st, Token: tok, Auth: auth, TokenName: a.tokenName(), PIN: pin, KDF: kdf, Log: log, SpoolDir: spool}
	cs := &server.ConnServer{Handlers: h, Log: log, MaxFilePayload: uint64(cfg.Server.MaxFilePayload),
		SpoolDir: spool, BatchWorkers: cfg.Server.BatchWorkers, MaxRPMsPayloads: uint64(cfg.Server.MaxRPMsPayloads),
		InnerTLS: &tls.Config{Certificates: []tls.Certificate{tlsCert}, ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs: pool, MinVersion: tls.VersionTLS12}}

	reuse := cfg.Server.ReuseConnections == nil || *cfg.Server.ReuseConnections
	var dialers []*server.Dialer
	for _, b := range bridges {
		name := b.ServerName
		if name == "" {
			if name, _, err = net.SplitHostPort(b.Address); err != nil {
				return fmt.Errorf("bridge address %q: %w", b.Address, err)
			}
		}
		dialers = append(dialers, &server.Dialer{Addr: b.Address, Idle: b.Idle, Max: tok.MaxSessions(), Log: log, Serve: cs.Serve,
			NoReuse: !reuse,
			TLS: &tls.Config{Certificates: []tls.Certificate{tlsCert}, RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12,
				// Without the reuse extension each request uses up a
				// connection; resuming sessions makes the replacement
				// dials cheap.
				ClientSessionCache: tls.NewLRUClientSessionCache(64)}})
	}
	h.Metrics = server.NewMetrics(dialers...)
	h.Metrics.WatchToken(tok)
	var wg sync.WaitGroup
	if path := cfg.Server.MetricsFile; path != "" {
		wg.Add(1)
		go func() { defer wg.Done(); h.Metrics.WriteLoop(ctx, path, every, log) }()
	}
	log.Info("signet-server running", "bridges", len(dialers), "reuse_connections", reuse, "database", st.Path(), "server_name", st.ServerName(), "token", a.tokenName(), "network_key_ceremonies", pin != nil)
	for _, d := range dialers {
		wg.Add(1)
		go func() { defer wg.Done(); d.Run(ctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		notifyReady(ctx, dialers, h.Metrics.Registry, cfg.Server.MetricsFile, log)
	}()
	wg.Wait()
	writeFinalMetrics(h.Metrics.Registry, cfg.Server.MetricsFile, log)
	log.Info("signet-server stopped")
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
