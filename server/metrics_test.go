package server_test

import (
	"context"
	"crypto/sha512"
	"io"
	"runtime"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/signet-project/signet/internal/servertest"
	"github.com/signet-project/signet/server"
)

// metricValue returns the value of the metric name whose labels include
// want: a gauge's or counter's value, a histogram's sample count.
func metricValue(t *testing.T, m *server.Metrics, name string, want map[string]string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, mt := range f.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range mt.GetLabel() {
					found = found || (l.GetName() == k && l.GetValue() == v)
				}
				if !found {
					continue next
				}
			}
			return value(mt)
		}
	}
	t.Fatalf("no metric %s%v", name, want)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestMetricsInFlightAndToken follows one sign-data request through the
// metrics: in flight while its payload is still arriving, then answered,
// its token operation's wait for a session recorded, no session left in
// use.
func TestMetricsInFlightAndToken(t *testing.T) {
	t.Parallel()
	e := servertest.New(t)
	m := server.NewMetrics()
	m.WatchToken(e.Handlers.Token)
	e.Handlers.Metrics = m

	if got := metricValue(t, m, "signet_server_token_sessions_max", nil); got != float64(e.Handlers.Token.MaxSessions()) {
		t.Fatalf("sessions_max = %v, want the token's cap %d", got, e.Handlers.Token.MaxSessions())
	}
	data := []byte("metrics payload")
	sum := sha512.Sum512(data)
	pr, pw := io.Pipe()
	req := &server.Request{Op: "sign-data", User: "alice", CN: "alice",
		Fields: map[string][]byte{"key": []byte("fedora")}, Secrets: map[string][]byte{"passphrase": []byte(servertest.AlicePass)},
		Payload: pr, PayloadSize: int64(len(data)), PayloadSHA512: sum[:], PayloadAuthenticated: true}
	type result struct {
		resp *server.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.Handlers.Serve(context.Background(), req)
		done <- result{resp, err}
	}()
	for i := 0; metricValue(t, m, "signet_server_requests_in_flight", nil) != 1; i++ {
		if i == 3000 {
			t.Fatal("after 30 s the request is not counted in flight")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := pw.Write(data); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("sign-data did not finish within 2 minutes")
	}
	if r.err != nil || r.resp.Status != 0 {
		t.Fatalf("sign-data: %v %+v", r.err, r.resp)
	}
	if got := metricValue(t, m, "signet_server_requests_in_flight", nil); got != 0 {
		t.Fatalf("answered, in flight = %v", got)
	}
	if got := metricValue(t, m, "signet_server_requests_total", map[string]string{"op": "sign-data", "status": "0"}); got != 1 {
		t.Fatalf("requests_total{sign-data,0} = %v, want 1", got)
	}
	if got := metricValue(t, m, "signet_server_token_session_wait_seconds", nil); got < 1 {
		t.Fatalf("no token operation's wait recorded (%v samples)", got)
	}
	if got := metricValue(t, m, "signet_server_token_sessions_in_use", nil); got != 0 {
		t.Fatalf("sessions in use after the request: %v", got)
	}
	// SoftHSM2 signs on this process's CPU: its C_Sign took some.
	if got := metricValue(t, m, "signet_server_token_sign_cpu_seconds_total", nil); runtime.GOOS == "linux" && got <= 0 {
		t.Fatalf("token_sign_cpu_seconds_total = %v after a SoftHSM2 signature", got)
	}
}

// TestMetricsBatchInFlight: a sign-rpms request stays in flight after its
// first reply, while its batch is served, until the batch is closed.
func TestMetricsBatchInFlight(t *testing.T) {
	t.Parallel()
	e := servertest.New(t)
	m := server.NewMetrics()
	e.Handlers.Metrics = m
	req := &server.Request{Op: "sign-rpms", User: "alice", CN: "alice",
		Fields: map[string][]byte{"key": []byte("fedora")}, Secrets: map[string][]byte{"passphrase": []byte(servertest.AlicePass)}}
	resp, err := e.Handlers.Serve(context.Background(), req)
	if err != nil || resp.Status != 0 || resp.Batch == nil {
		t.Fatalf("sign-rpms: %v %+v", err, resp)
	}
	if got := metricValue(t, m, "signet_server_requests_in_flight", nil); got != 1 {
		t.Fatalf("batch being served: in flight = %v, want 1", got)
	}
	resp.Batch.Close()
	resp.Batch.Close()
	if got := metricValue(t, m, "signet_server_requests_in_flight", nil); got != 0 {
		t.Fatalf("batch closed (twice): in flight = %v, want 0", got)
	}
}
