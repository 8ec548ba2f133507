package robo

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/signet-project/signet/internal/metricsserver"
)

type metrics struct {
	reg        *prometheus.Registry
	messages   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	artifacts  *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	inFlight   prometheus.Gauge
	connected  prometheus.Gauge
	reconnects prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_robo_messages_total",
			Help: "Messages handled, by kind and outcome (success, failure, rejected, retried, dead_lettered).",
		}, []string{"kind", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_robo_retries_total",
			Help: "Messages sent to the retry queue after a transient failure, by kind.",
		}, []string{"kind"}),
		artifacts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_robo_artifacts_total",
			Help: "Artifacts handled, by kind and outcome (signed, skipped: already signed, failed).",
		}, []string{"kind", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signet_robo_signing_seconds",
			Help:    "Time to process one message (fetch, check, sign, store), by kind.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}, []string{"kind"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_robo_in_flight", Help: "Messages being processed."}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_robo_connected", Help: "1 while consuming from the broker."}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_robo_reconnects_total", Help: "Times the broker connection was lost or could not be made."}),
	}
	m.reg.MustRegister(m.messages, m.retries, m.artifacts, m.latency, m.inFlight, m.connected, m.reconnects)
	return m
}

// MetricsHandler serves the Prometheus metrics.
func (r *Robo) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(r.m.reg, promhttp.HandlerOpts{})
}

// ServeMetrics serves /metrics on addr (loopback only) until ctx ends.
// It returns once listening, with the listener's address.
func (r *Robo) ServeMetrics(ctx context.Context, addr string) (string, error) {
	ln, err := metricsserver.Listen(addr)
	if err != nil {
		return "", err
	}
	srv := metricsserver.NewServer(r.MetricsHandler())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("metrics endpoint failed", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { srv.Close() })
	return ln.Addr().String(), nil
}
