package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-project/signet/client"
)

// BenchmarkServiceSignData runs sign-data requests from 64 concurrent
// clients through a running stack (SIGNET_DEVSTACK: a directory where
// scripts/devstack.sh up runs; SIGNET_BENCH_KEY: the key, default
// demo-rsa) and reports requests per second and the p50 and p99 latency.
// scripts/bench-service.sh runs it next to the token's raw sign rate.
func BenchmarkServiceSignData(b *testing.B) {
	dir := os.Getenv("SIGNET_DEVSTACK")
	if dir == "" {
		b.Skip("set SIGNET_DEVSTACK to a directory where scripts/devstack.sh up runs (scripts/bench-service.sh does)")
	}
	key := os.Getenv("SIGNET_BENCH_KEY")
	if key == "" {
		key = "demo-rsa"
	}
	cfg, err := client.LoadConfig(filepath.Join(dir, "alice.toml"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "secrets/alice-passphrase"))
	if err != nil {
		b.Fatal(err)
	}
	pass := []byte(strings.TrimSpace(string(raw)))
	data := bytes.Repeat([]byte("signet benchmark payload\n"), 40) // 1 KB
	const clients = 64
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
		failed    atomic.Value
		wg        sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				err := c.SignData(context.Background(), key, false, bytes.Clone(pass), bytes.NewReader(data), int64(len(data)), io.Discard)
				if err != nil {
					failed.Store(err)
					return
				}
				mu.Lock()
				latencies = append(latencies, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("a request failed: %v", err)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}
