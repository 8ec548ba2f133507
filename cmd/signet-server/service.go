package main

// What running under systemd needs: the PIN from a credential, readiness
// notification, and a status check for monitoring.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/signet-project/signet/cmd/internal/health"
	"github.com/signet-project/signet/cmd/internal/sdnotify"
	"github.com/signet-project/signet/server"
)

// pinCredential is the path of the systemd credential name (server.pin_credential):
// $CREDENTIALS_DIRECTORY/name, which LoadCredential= or
// LoadCredentialEncrypted= fills. Empty name: none configured.
func pinCredential(name string) (string, error) {
	return credentialPath("server.pin_credential", name)
}

// credentialPath returns the file of the systemd credential name, which
// the configuration key setting names; "" for no name.
func credentialPath(setting, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if strings.ContainsRune(name, '/') || name == "." || name == ".." {
		return "", fmt.Errorf("configuration %s %q: a credential name, not a path", setting, name)
	}
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return "", fmt.Errorf("configuration %s = %q, but $CREDENTIALS_DIRECTORY is not set: "+
			"start the server from a unit with LoadCredential=%s:FILE or LoadCredentialEncrypted=%s:FILE", setting, name, name, name)
	}
	return filepath.Join(dir, name), nil
}

// notifyReady tells the service manager READY=1 once every configured
// bridge holds at least one established connection from this server (so
// that units ordered after signet-server start when requests can be
// served), keeps STATUS= current, and says STOPPING=1 when ctx ends. At
// the moment of readiness the metrics file is rewritten, so that `status`
// agrees with systemd at once.
func notifyReady(ctx context.Context, dialers []*server.Dialer, reg *prometheus.Registry, metricsFile string, log *slog.Logger) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	ready := false
	last := ""
	for {
		up := 0
		for _, d := range dialers {
			if d.Connected() > 0 {
				up++
			}
		}
		st := fmt.Sprintf("connected to %d of %d bridges", up, len(dialers))
		msg := ""
		if !ready && up == len(dialers) {
			ready = true
			if metricsFile != "" && reg != nil {
				prometheus.WriteToTextfile(metricsFile, reg)
			}
			msg = sdnotify.Ready + "\n"
			log.Info("signet-server ready", "bridges", len(dialers))
		}
		if st != last || msg != "" {
			last = st
			if _, err := sdnotify.Notify(msg + sdnotify.Status("%s", st)); err != nil {
				log.Warn("cannot notify the service manager", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			sdnotify.Notify(sdnotify.Stopping + "\n" + sdnotify.Status("stopping: requests in flight finish"))
			return
		case <-t.C:
		}
	}
}

// writeFinalMetrics writes the metrics file once more after every
// connection closed, so that it does not show a stopped server connected.
func writeFinalMetrics(reg *prometheus.Registry, path string, log *slog.Logger) {
	if path == "" {
		return
	}
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		log.Warn("cannot write the metrics file", "path", path, "err", err)
	}
}

// statusCmd reports what a monitoring check needs, from the metrics file
// the running server writes (it opens no socket to ask it).
func (a *app) statusCmd() *cobra.Command {
	var maxAge time.Duration
	var file string
	c := &cobra.Command{
		Use:   "status",
		Short: "Report the running server's health for monitoring (exit 0 OK, 1 WARNING, 2 CRITICAL)",
		Long: `status reads the metrics file the running server writes (server.metrics_file,
or --metrics-file) and prints one summary line, then details:

  OK: signet-server connected to 1 of 1 bridges (metrics 3s old)
  bridge bridge.example.org:44333: 4 connected, 4 idle, 4 in all
  requests: 120 answered with status 0, 3 with an error status, 0 dropped

It exits as a Nagios/Icinga plugin does: 0 OK (every bridge has a live
connection), 1 WARNING (some bridges have none), 2 CRITICAL (none has, the
file is missing, unreadable, or older than --max-age, which means the server
is not running or not writing it). The server rewrites the file every 15s.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				file = a.cfg.Server.MetricsFile
			}
			r := serverStatus(file, maxAge, time.Now())
			r.Print(cmd.OutOrStdout())
			return r.Err()
		},
	}
	c.Flags().DurationVar(&maxAge, "max-age", time.Minute, "the metrics file must be younger than this")
	c.Flags().StringVar(&file, "metrics-file", "", "the server's metrics file (default: server.metrics_file of the configuration)")
	return c
}

func serverStatus(file string, maxAge time.Duration, now time.Time) *health.Report {
	r := &health.Report{Program: "signet-server"}
	if file == "" {
		return r.Critical("no metrics file: set server.metrics_file in the configuration (or give --metrics-file)")
	}
	fi, err := os.Stat(file)
	if err != nil {
		return r.Critical("metrics file: %v (is the server running?)", errors.Unwrap(err))
	}
	age := now.Sub(fi.ModTime()).Truncate(time.Second)
	f, err := os.Open(file)
	if err != nil {
		return r.Critical("metrics file: %v", err)
	}
	defer f.Close()
	m, err := health.Parse(f)
	if err != nil {
		return r.Critical("metrics file %s: %v", file, err)
	}
	conn := m.ByLabel("signet_server_bridge_connected", "bridge")
	idle := m.ByLabel("signet_server_bridge_connections_idle", "bridge")
	total := m.ByLabel("signet_server_bridge_connections", "bridge")
	up := 0
	for _, b := range health.Keys(conn) {
		if conn[b] > 0 {
			up++
		}
		r.Detail("bridge %s: %g connected, %g idle, %g in all", b, conn[b], idle[b], total[b])
	}
	ok, failed := 0.0, 0.0
	for status, n := range m.ByLabel("signet_server_requests_total", "status") {
		if status == "0" {
			ok += n
		} else {
			failed += n
		}
	}
	r.Detail("requests: %g answered with status 0, %g with an error status, %g dropped", ok, failed, m.Sum("signet_server_requests_dropped_total"))
	summary := fmt.Sprintf("signet-server connected to %d of %d bridges (metrics %s old)", up, len(conn), age)
	switch {
	case age > maxAge:
		return r.Critical("metrics file %s is %s old (more than %s): the server is not running or cannot write it", file, age, maxAge)
	case len(conn) == 0:
		return r.Critical("metrics file %s names no bridge", file)
	case up == 0:
		return r.Critical("%s", summary)
	case up < len(conn):
		return r.Warning("%s", summary)
	}
	return r.OK("%s", summary)
}
