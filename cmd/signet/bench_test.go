package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-project/signet/client"
)

// BenchmarkServiceSignData runs sign-data requests from concurrent
// clients (SIGNET_BENCH_CLIENTS, default 64) through a running stack
// (SIGNET_DEVSTACK: a directory where scripts/devstack.sh up runs;
// SIGNET_BENCH_KEY: the key, default demo-rsa) and reports requests per
// second, the p50 and p99 latency, and how many requests failed (any
// failure fails the benchmark, after every client has finished).
// scripts/bench-service.sh runs it next to the token's raw sign rate,
// scripts/bench-scale.sh with 256 clients.
func BenchmarkServiceSignData(b *testing.B) {
	dir := os.Getenv("SIGNET_DEVSTACK")
	if dir == "" {
		b.Skip("set SIGNET_DEVSTACK to a directory where scripts/devstack.sh up runs (scripts/bench-service.sh does)")
	}
	c, key, pass := benchClient(b, dir)
	data := bytes.Repeat([]byte("signet benchmark payload\n"), 40) // 1 KB
	clients := 64
	if s := os.Getenv("SIGNET_BENCH_CLIENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("SIGNET_BENCH_CLIENTS=%q: want a positive number", s)
		}
		clients = n
	}
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
		failed    atomic.Value
		failures  atomic.Int64
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
				err := c.SignData(context.Background(), client.SignDataRequest{Key: key, Passphrase: bytes.Clone(pass), In: bytes.NewReader(data), Size: int64(len(data))}, io.Discard)
				if err != nil {
					failed.Store(err)
					failures.Add(1)
					continue
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
		b.Fatalf("%d of %d requests failed; one: %v", failures.Load(), b.N, err)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(clients), "clients")
	b.ReportMetric(float64(failures.Load()), "failures")
}

// BenchmarkServiceSignRPMs signs every RPM in SIGNET_BENCH_RPMS with one
// sign-rpms connection per iteration, through a running stack
// (SIGNET_DEVSTACK), with demo-rsa (SIGNET_BENCH_KEY), with head signing
// unless SIGNET_BENCH_HEAD=0. It reports packages per second and the
// bytes the bridge forwarded to the server per package (from the
// bridge's metrics at SIGNET_BENCH_METRICS, a host:port). Outputs go to a
// temporary directory. scripts/bench-rpms.sh runs it next to the token's
// raw sign rate.
func BenchmarkServiceSignRPMs(b *testing.B) {
	dir, rpmDir := os.Getenv("SIGNET_DEVSTACK"), os.Getenv("SIGNET_BENCH_RPMS")
	if dir == "" || rpmDir == "" {
		b.Skip("set SIGNET_DEVSTACK and SIGNET_BENCH_RPMS (scripts/bench-rpms.sh does)")
	}
	c, key, pass := benchClient(b, dir)
	paths, _ := filepath.Glob(filepath.Join(rpmDir, "*.rpm"))
	if len(paths) == 0 {
		b.Fatalf("no RPMs in %s", rpmDir)
	}
	out := b.TempDir()
	var files []client.RPMFile
	for _, p := range paths {
		files = append(files, client.RPMFile{Path: p, Output: filepath.Join(out, filepath.Base(p))})
	}
	head := os.Getenv("SIGNET_BENCH_HEAD") != "0"
	metrics := os.Getenv("SIGNET_BENCH_METRICS")
	// One package first, untimed: the server's first use of the key
	// unwraps its PIN with the passphrase (Argon2id, about 0.5 s of CPU),
	// then keeps it for its unwrap cache's lifetime. The figure is the
	// steady state.
	t0 := time.Now()
	if _, err := c.SignRPMs(context.Background(), client.SignRPMOptions{Key: key, Passphrase: bytes.Clone(pass), HeadSigning: head},
		[]client.RPMFile{{Path: files[0].Path, Output: filepath.Join(b.TempDir(), "warm.rpm")}}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "first_batch_ms")
	before := forwardedToServer(b, metrics)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		results, err := c.SignRPMs(context.Background(), client.SignRPMOptions{Key: key, Passphrase: bytes.Clone(pass), HeadSigning: head}, files)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range results {
			if r.Err != nil {
				b.Fatalf("%s: %v", r.Path, r.Err)
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	n := float64(b.N * len(files))
	b.ReportMetric(n/elapsed.Seconds(), "rpms/s")
	if metrics != "" {
		b.ReportMetric((forwardedToServer(b, metrics)-before)/n, "bytes_to_server/rpm")
	}
}

// forwardedToServer reads the bridge's client-to-server byte counter.
func forwardedToServer(b *testing.B, addr string) float64 {
	if addr == "" {
		return 0
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, `signet_bridge_forwarded_bytes_total{direction="client_to_server"}`) {
			v, err := strconv.ParseFloat(strings.Fields(l)[1], 64)
			if err != nil {
				b.Fatal(err)
			}
			return v
		}
	}
	b.Fatalf("no client_to_server byte counter at %s", addr)
	return 0
}

// benchClient returns a client for alice on the devstack in dir, the key
// to use (SIGNET_BENCH_KEY, default demo-rsa) and alice's passphrase.
func benchClient(b *testing.B, dir string) (*client.Client, string, []byte) {
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
	return c, key, []byte(strings.TrimSpace(string(raw)))
}
