package bridge

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/signet-project/signet/internal/metricsserver"
	"github.com/signet-project/signet/protocol"
)

// Request results, the values of the result label of
// signet_bridge_requests_total.
const (
	ResultRelayed           = "relayed"             // reply (and sub-replies) forwarded, clean teardown
	ResultDroppedInvalid    = "dropped_invalid"     // bad version, header, op, field or size (§4.2)
	ResultDroppedCNMismatch = "dropped_cn_mismatch" // certificate CN is not the user field
	ResultDroppedKoji       = "dropped_koji"        // the request needs Koji, and no Koji instance is configured
	ResultKojiImport        = "koji_import_failed"  // importing a signature into Koji failed after the server signed
	ResultPairingTimeout    = "pairing_timeout"     // no server connection became free in time
	ResultPeerError         = "peer_error"          // a peer failed, stalled or dropped mid-request
	ResultShutdown          = "shutdown"            // the bridge shut down before pairing
	ResultDroppedServerCert = "dropped_server_cert" // the client certificate names one of server_names
	ResultDroppedCNLimit    = "dropped_cn_limit"    // the CN already had max_requests_per_cn requests open
	ResultDroppedPending    = "dropped_pending"     // max_pending_pairings requests already waited for a server
	ResultTooSlow           = "too_slow"            // the client kept less than min_transfer_rate
	ResultDeadline          = "deadline"            // the request ran past request_timeout
)

// Reasons a server connection was refused, the values of the reason label
// of signet_bridge_server_connections_refused_total.
const (
	RefusedIdentity  = "identity"  // the certificate names none of server_names
	RefusedPoolFull  = "pool_full" // max_idle_servers already wait
	RefusedHandshake = "handshake" // the TLS handshake failed or timed out
)

type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	wait     prometheus.Histogram
	bytes    *prometheus.CounterVec
	toServer prometheus.Counter
	toClient prometheus.Counter
	idle     prometheus.Gauge
	waiting  prometheus.Gauge

	serverRefused *prometheus.CounterVec
	// serverReturned counts server connections returned to the pool after
	// a request; reusedPairings requests paired with such a connection.
	serverReturned prometheus.Counter
	reusedPairings prometheus.Counter
	limits         *prometheus.CounterVec
	handshakes     *prometheus.GaugeVec
}

// limitHit counts one hit of a limit (the Limit* names).
func (m *metrics) limitHit(limit string) { m.limits.WithLabelValues(limit).Inc() }

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_bridge_requests_total",
			Help: "Client requests by operation and result.",
		}, []string{"op", "result"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signet_bridge_pairing_wait_seconds",
			Help:    "Time a validated client request waited for an idle server connection.",
			Buckets: []float64{0.001, 0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_bridge_forwarded_bytes_total",
			Help: "Bytes written to peers (chunk headers included, TLS overhead excluded), by direction.",
		}, []string{"direction"}),
		idle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_bridge_idle_server_connections",
			Help: "Server connections waiting for a request.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_bridge_clients_waiting",
			Help: "Validated client requests waiting for a server connection.",
		}),
	}
	m.serverRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_bridge_server_connections_refused_total",
		Help: "Connections to the server port that were closed instead of joining the idle pool, by reason.",
	}, []string{"reason"})
	m.serverReturned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signet_bridge_server_connections_returned_total",
		Help: "Server connections returned to the idle pool after a request that ended cleanly (the reuse extension, signet-reuse/1).",
	})
	m.reusedPairings = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signet_bridge_reused_server_connection_requests_total",
		Help: "Client requests paired with a server connection that had already carried a request (the reuse extension, signet-reuse/1).",
	})
	m.limits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_bridge_limits_hit_total",
		Help: "Times a connection or request was refused or cut off by one of the bridge's limits, by limit.",
	}, []string{"limit"})
	m.handshakes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "signet_bridge_tls_handshakes_in_progress",
		Help: "Outer TLS handshakes in progress, by port (client or server).",
	}, []string{"port"})
	m.toServer = m.bytes.WithLabelValues("client_to_server")
	m.toClient = m.bytes.WithLabelValues("server_to_client")
	m.reg.MustRegister(m.requests, m.wait, m.bytes, m.idle, m.waiting, m.serverRefused, m.serverReturned, m.reusedPairings, m.limits, m.handshakes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every known label value exists from the start, so that rates work
	// before the first event.
	for _, r := range []string{ResultRelayed, ResultDroppedInvalid, ResultDroppedCNMismatch, ResultDroppedKoji, ResultKojiImport, ResultPairingTimeout, ResultPeerError, ResultShutdown, ResultDroppedServerCert,
		ResultDroppedCNLimit, ResultDroppedPending, ResultTooSlow, ResultDeadline} {
		m.requests.WithLabelValues(opUnknown, r)
	}
	for _, r := range []string{RefusedIdentity, RefusedPoolFull, RefusedHandshake} {
		m.serverRefused.WithLabelValues(r)
	}
	m.handshakes.WithLabelValues("client")
	m.handshakes.WithLabelValues("server")
	for _, l := range allLimits {
		m.limits.WithLabelValues(l)
	}
	return m
}

// opUnknown labels requests whose op is absent or not in §4.4, so that a
// client cannot create label values at will.
const opUnknown = "unknown"

func opLabel(op string) string {
	if _, ok := protocol.LookupOp(op); ok {
		return op
	}
	return opUnknown
}

// MetricsHandler returns the Prometheus handler for the bridge's metrics.
func (b *Bridge) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(b.m.reg, promhttp.HandlerOpts{})
}

// ServeMetrics serves /metrics on ln, which must listen on a loopback
// address, until Shutdown. It returns nil after Shutdown.
func (b *Bridge) ServeMetrics(ln net.Listener) error {
	if err := metricsserver.CheckListener(ln); err != nil {
		ln.Close()
		return err
	}
	srv := metricsserver.NewServer(b.MetricsHandler())
	b.mu.Lock()
	if b.shutting {
		b.mu.Unlock()
		ln.Close()
		return nil
	}
	b.metricsSrv = srv
	b.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (b *Bridge) stopMetrics(ctx context.Context) {
	b.mu.Lock()
	srv := b.metricsSrv
	b.mu.Unlock()
	if srv != nil {
		srv.Shutdown(ctx)
	}
}
