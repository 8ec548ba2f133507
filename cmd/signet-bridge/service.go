package main

// What running under systemd needs: readiness notification and a status
// check for monitoring.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/cmd/internal/health"
	"github.com/signet-project/signet/cmd/internal/sdnotify"
)

// notifyReady says READY=1 (both listeners are up, so clients and servers
// can connect) and, once ctx ends, STOPPING=1.
func notifyReady(ctx context.Context, clientAddr, serverAddr string, log *slog.Logger) {
	if _, err := sdnotify.Notify(sdnotify.Ready + "\n" + sdnotify.Status("listening: clients on %s, servers on %s", clientAddr, serverAddr)); err != nil {
		log.Warn("cannot notify the service manager", "err", err)
	}
	go func() {
		<-ctx.Done()
		sdnotify.Notify(sdnotify.Stopping + "\n" + sdnotify.Status("stopping: requests in flight finish"))
	}()
}

func (a *app) statusCmd() *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "status",
		Short: "Report the running bridge's health for monitoring (exit 0 OK, 1 WARNING, 2 CRITICAL)",
		Long: `status asks the running bridge's metrics endpoint (metrics_listen, on
loopback) and prints one summary line, then details:

  OK: signet-bridge has 4 idle server connections, 0 clients waiting
  requests: 120 relayed, 0 pairing timeouts, 2 dropped (invalid, CN, Koji), 1 peer errors

It exits as a Nagios/Icinga plugin does: 0 OK, 1 WARNING (no idle server
connection: no signing server is connected, or all are busy; clients wait
up to pairing_timeout), 2 CRITICAL (the endpoint does not answer: the bridge
is not running, or metrics_listen is not set).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := bridgeStatus(a.cfg.MetricsListen, timeout)
			r.Print(cmd.OutOrStdout())
			return r.Err()
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the metrics endpoint")
	return c
}

func bridgeStatus(addr string, timeout time.Duration) *health.Report {
	r := &health.Report{Program: "signet-bridge"}
	if addr == "" {
		return r.Critical("metrics_listen is not set: the status check reads the bridge's metrics endpoint")
	}
	hc := &http.Client{Timeout: timeout}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return r.Critical("metrics endpoint %s: %v (is the bridge running?)", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r.Critical("metrics endpoint %s: HTTP %s", addr, resp.Status)
	}
	m, err := health.Parse(resp.Body)
	if err != nil {
		return r.Critical("metrics endpoint %s: %v", addr, err)
	}
	if !m.Has("signet_bridge_idle_server_connections") {
		return r.Critical("metrics endpoint %s is not a signet bridge's", addr)
	}
	idle := m.Sum("signet_bridge_idle_server_connections")
	waiting := m.Sum("signet_bridge_clients_waiting")
	res := m.ByLabel("signet_bridge_requests_total", "result")
	r.Detail("requests: %g relayed, %g pairing timeouts, %g dropped (invalid, CN, Koji), %g peer errors",
		res["relayed"], res["pairing_timeout"], res["dropped_invalid"]+res["dropped_cn_mismatch"]+res["dropped_koji"], res["peer_error"])
	summary := fmt.Sprintf("signet-bridge has %g idle server connections, %g clients waiting", idle, waiting)
	if idle == 0 {
		return r.Warning("%s", summary)
	}
	return r.OK("%s", summary)
}
