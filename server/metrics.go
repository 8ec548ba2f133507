package server

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/protocol"
)

// Metrics are the server's Prometheus metrics. The server listens on no
// socket, so they are written to a node-exporter textfile (WriteLoop).
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	dropped  *prometheus.CounterVec
}

// NewMetrics registers the server's metrics; dialers report their
// connection counts through the returned Metrics.
func NewMetrics(dialers ...*Dialer) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_server_requests_total", Help: "Requests answered, by operation and Sigul status code.",
		}, []string{"op", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "signet_server_request_seconds", Help: "Time to answer a request, from its decoding to its reply.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"op"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_server_requests_dropped_total", Help: "Requests closed without a reply (malformed, bad hashes, audit failure).",
		}, []string{"op"}),
	}
	m.Registry.MustRegister(m.requests, m.duration, m.dropped,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "signet_server_kdf_runs_total", Help: "Argon2id runs to wrap or unwrap token PINs.",
		}, func() float64 { return float64(hsm.KDFRuns()) }))
	for _, d := range dialers {
		d := d
		labels := prometheus.Labels{"bridge": d.Addr}
		m.Registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "signet_server_bridge_connections_idle",
				Help: "Connections waiting at the bridge for a request.", ConstLabels: labels},
				func() float64 { return float64(d.Stats().Idle) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "signet_server_bridge_connections",
				Help: "Connections to the bridge, idle and busy.", ConstLabels: labels},
				func() float64 { return float64(d.Stats().Total) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "signet_server_bridge_connected",
				Help: "Connections to the bridge with TLS established, idle and busy (0: the bridge cannot reach this server).", ConstLabels: labels},
				func() float64 { return float64(d.Connected()) }))
	}
	return m
}

// observe records one request's outcome; a nil Metrics records nothing.
func (m *Metrics) observe(op string, status protocol.ErrorCode, dropped bool, took time.Duration) {
	if m == nil {
		return
	}
	if dropped {
		m.dropped.WithLabelValues(op).Inc()
		return
	}
	m.requests.WithLabelValues(op, strconv.Itoa(int(status))).Inc()
	m.duration.WithLabelValues(op).Observe(took.Seconds())
}

// WriteLoop writes the metrics to path (atomically) every interval until
// ctx ends, and once more at the end.
func (m *Metrics) WriteLoop(ctx context.Context, path string, interval time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := prometheus.WriteToTextfile(path, m.Registry); err != nil {
			log.Warn("cannot write the metrics file", "path", path, "err", err)
		}
		select {
		case <-ctx.Done():
			prometheus.WriteToTextfile(path, m.Registry)
			return
		case <-t.C:
		}
	}
}
