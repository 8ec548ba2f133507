package robo

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkRoboArtifactsSign publishes b.N artifacts-sign requests (one
// 4 KiB artifact each, RSA-4096 key demo-rsa) to a private RabbitMQ,
// then starts signet-robo and measures the time until every request is
// answered SUCCESS: signed artifacts per second, end to end (broker,
// fetch and checksum, client, bridge, server, token, signature stored,
// finished message confirmed, acknowledgement).
//
// It needs a running devstack named by $SIGNET_DEVSTACK (as
// scripts/bench-robo.sh sets up) or starts one. Run it with
// -benchtime 1000x: the framework's first call (b.N = 1) only probes.
// $SIGNET_BENCH_CONCURRENCY sets amqp.concurrency (default 8).
func BenchmarkRoboArtifactsSign(b *testing.B) {
	if b.N == 1 {
		return
	}
	conc := 8
	if s := os.Getenv("SIGNET_BENCH_CONCURRENCY"); s != "" {
		var err error
		if conc, err = strconv.Atoi(s); err != nil || conc <= 0 {
			b.Fatalf("SIGNET_BENCH_CONCURRENCY=%q", s)
		}
	}
	w := newWorld(b)
	const name = "bench"
	cfg := artifactsConfig(w, name, fmt.Sprintf("concurrency = %d\nprefetch = %d", conc, 4*conc), "")
	// A first run declares the queue and its bindings; the requests wait
	// there until the measured run starts.
	w.startRobo(b, cfg).stop(b)
	p := w.newPeer(b, name+".finished", artifactsKey(name)+".finished")
	ids := requests(b, p, artifactsKey(name), b.N, "bench", 4<<10)
	b.ResetTimer()
	start := time.Now()
	run := w.startRobo(b, cfg)
	seen := waitAll(b, p, ids, 30*time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	if len(seen) != b.N {
		b.Fatalf("%d of %d answered", len(seen), b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "artifacts/s")
	b.ReportMetric(counter(run.r, "signet_robo_retries_total"), "retries")
	b.ReportMetric(float64(conc), "concurrency")
}
