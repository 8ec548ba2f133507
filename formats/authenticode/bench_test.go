package authenticode

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// openKernel opens Debian's arm64 kernel (27 MB), the largest image.
func openKernel(t testing.TB) (*os.File, int64) {
	t.Helper()
	return openFile(t, filepath.Join(efiDir(t), "arm64/kernel.efi"))
}

// BenchmarkSignKernel parses and signs the arm64 kernel with a software
// RSA-2048 key, writing to io.Discard.
func BenchmarkSignKernel(b *testing.B) {
	f, size := openKernel(b)
	p := newPKI(b, b.TempDir(), "bench", rsa2048)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		img, err := Parse(f, size)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Sign(io.Discard, img, p.key, SignOptions{Certificate: p.leaf}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSignMemory checks that signing the 27 MB kernel allocates a small,
// fixed amount, not the image: Sign streams it.
func TestSignMemory(t *testing.T) {
	f, size := openKernel(t)
	p := newPKI(t, t.TempDir(), "memory", rsa2048)
	sign := func() {
		img, err := Parse(f, size)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Sign(io.Discard, img, p.key, SignOptions{Certificate: p.leaf}); err != nil {
			t.Fatal(err)
		}
	}
	sign() // first-use initialisation
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sign()
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("signing a %d-byte image allocated %d bytes", size, alloc)
	if alloc > 2<<20 {
		t.Errorf("signing a %d-byte image allocated %d bytes; it should stream", size, alloc)
	}
}
