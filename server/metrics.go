package server

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
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
	inFlight prometheus.Gauge
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
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_server_requests_in_flight", Help: "Requests decoded and not yet answered (a sign-rpms batch counts once).",
		}),
	}
	m.Registry.MustRegister(m.requests, m.duration, m.dropped, m.inFlight,
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
				func() float64 { return float64(d.Connected()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "signet_server_bridge_reused_requests_total",
				Help: "Requests that arrived on a connection to the bridge that had already carried one (the reuse extension, signet-reuse/1).", ConstLabels: labels},
				func() float64 { return float64(d.Reused()) }))
	}
	return m
}

// WatchToken exports the token's session use: slots in use, the cap,
// operations waiting for a slot, and the time each operation waited
// (a request's queue for the token); and the CPU time spent in the
// module's signing calls. Call it once per token.
func (m *Metrics) WatchToken(tok *hsm.Token) {
	wait := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "signet_server_token_session_wait_seconds",
		Help: "Time a token operation waited for a free session slot (0 when one was free).",
		// 0 lands in the first bucket; a YubiHSM 2 signs RSA-4096 in 0.85 s,
		// so queues of tens of seconds are possible under load.
		Buckets: append([]float64{0}, prometheus.ExponentialBuckets(0.001, 2.5, 14)...),
	})
	m.Registry.MustRegister(wait,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "signet_server_token_sessions_in_use",
			Help: "Token session slots held by operations now."},
			func() float64 { return float64(tok.SessionsInUse()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "signet_server_token_sessions_max",
			Help: "The token session cap in force (token.max_sessions, lowered to the token's own limit)."},
			func() float64 { return float64(tok.MaxSessions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "signet_server_token_sessions_waiting",
			Help: "Token operations waiting now for a free session slot."},
			func() float64 { return float64(tok.SessionsWaiting()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "signet_server_token_sign_cpu_seconds_total",
			Help: "CPU time this process spent inside the token module's C_SignInit and C_Sign (a software token's signing cost; near zero for a device)."},
			func() float64 { return tok.SignCPU().Seconds() }))
	tok.ObserveWait(func(d time.Duration) { wait.Observe(d.Seconds()) })
}

// begin counts a request in flight until the returned function runs; a
// nil Metrics counts nothing.
func (m *Metrics) begin() (end func()) {
	if m == nil {
		return func() {}
	}
	m.inFlight.Inc()
	return m.inFlight.Dec
}

// countedBatch ends its request's in-flight count when it is closed.
type countedBatch struct {
	Batch
	once sync.Once
	end  func()
}

func (b *countedBatch) Close() {
	b.Batch.Close()
	b.once.Do(b.end)
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
