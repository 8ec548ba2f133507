package hsm_test

import (
	"crypto"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signet-project/signet/hsm"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// BenchmarkSign measures signatures per second for each key type, through
// the Signer and through bare C_Sign on the same token in the same run, at
// one goroutine and at N. scripts/bench.sh prints the ratio of the two.
func BenchmarkSign(b *testing.B) {
	tok := softhsmtest.New(b).Open(b)
	n := max(2, runtime.NumCPU())
	for _, kt := range keyTypes(b) {
		key, err := tok.GenerateKey(hsm.GenerateRequest{Type: kt, Label: "bench-" + kt.String()})
		if err != nil {
			b.Fatal(err)
		}
		opts := crypto.SignerOpts(crypto.SHA256)
		sum := sha256.Sum256([]byte("benchmark"))
		digest := sum[:]
		if kt == hsm.Ed25519 {
			opts, digest = crypto.Hash(0), []byte("a 32-byte message to be signed!!")
		}
		for _, g := range []int{1, n} {
			b.Run(fmt.Sprintf("%s/raw/g%d", kt, g), func(b *testing.B) {
				signers := make([]func() error, g)
				for i := range signers {
					sign, done, err := hsm.RawSession(key, digest, opts)
					if err != nil {
						b.Fatal(err)
					}
					defer done()
					signers[i] = sign
				}
				parallel(b, g, func(i int) error { return signers[i]() })
			})
			b.Run(fmt.Sprintf("%s/signer/g%d", kt, g), func(b *testing.B) {
				cpu0 := tok.SignCPU()
				parallel(b, g, func(int) error {
					_, err := key.Sign(nil, digest, opts)
					return err
				})
				// What Token.SignCPU (the server's metric) counted, to set
				// against cpu_us/sig, which counts the whole process.
				b.ReportMetric(float64((tok.SignCPU()-cpu0).Microseconds())/float64(b.N), "sign_cpu_us/sig")
			})
		}
	}
}

// parallel runs b.N calls of fn spread over g goroutines and reports
// signatures per second and the process's CPU time (user and system,
// SoftHSM2's work included) per signature.
func parallel(b *testing.B, g int, fn func(goroutine int) error) {
	cpu0 := cpuTime(b)
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := fn(i); err != nil {
					failed.Store(err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu_us/sig")
}

// cpuTime is the CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
