package secureboottest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/testenv"
)

// images returns the directory holding Debian's unsigned
// <arch>/{shim,grub,kernel}.efi (skipped without them, except in CI).
func images(t *testing.T) string { return artifacts.EFIImages(t) }

// signer is a throwaway CA and a code-signing certificate it issued, with
// the signing certificate and key written as PEM files for sbsign.
type signer struct {
	ca       *x509.Certificate
	certFile string
	keyFile  string
}

func newSigner(t *testing.T, name string) *signer {
	t.Helper()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: name + " test EFI signing"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &signer{ca: ca, certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(s.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// sign returns a copy of image signed with sbsign.
func (s *signer) sign(t *testing.T, image string) string {
	t.Helper()
	testenv.MustHave(t, "sbsign")
	out := filepath.Join(t.TempDir(), "signed-"+filepath.Base(image))
	cmd := exec.Command("sbsign", "--key", s.keyFile, "--cert", s.certFile, "--output", out, image)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sbsign %s: %v\n%s", image, err, b)
	}
	return out
}

const (
	grubBanner   = "Welcome to GRUB!"
	kernelBanner = "EFI stub: UEFI Secure Boot is enabled."
	shimRefusal  = "Verification failed: (0x1A) Security Violation"
)

// TestBoot boots Debian's real GRUB, kernel and shim on both
// architectures: setup mode boots anything; in user mode with our CA in db,
// images signed under it boot and anything else is refused, by the
// firmware and by shim.
func TestBoot(t *testing.T) {
	testenv.SkipShort(t, "boots QEMU")
	dir := images(t)
	ours := newSigner(t, "ours")
	other := newSigner(t, "other")
	t.Cleanup(func() {
		if left := qemuChildren(t); len(left) > 0 {
			t.Errorf("QEMU left running: %v", left)
		}
	})
	for _, arch := range []Arch{AMD64, ARM64} {
		t.Run(string(arch), func(t *testing.T) {
			t.Parallel() // one QEMU per architecture at a time
			if err := Available(arch); err != nil {
				testenv.Unavailable(t, "%v", err)
			}
			grub := filepath.Join(dir, string(arch), "grub.efi")
			kernel := filepath.Join(dir, string(arch), "kernel.efi")
			setup, err := Vars(arch, Keys{})
			if err != nil {
				t.Fatal(err)
			}
			user, err := Vars(arch, Keys{PK: ours.ca, KEK: ours.ca, DB: []*x509.Certificate{ours.ca}})
			if err != nil {
				t.Fatal(err)
			}
			// bootFiles boots files and checks the verdict and, when given,
			// the payload's banner.
			bootFiles := func(t *testing.T, vars []byte, files map[string]string, want Verdict, banner string) Result {
				t.Helper()
				var wait []string
				if banner != "" {
					wait = []string{banner}
				}
				start := time.Now()
				r, err := BootFiles(context.Background(), arch, vars, files, wait...)
				t.Logf("%v %q, verdict after %v, boot %v", r.Verdict, r.Status, r.Elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
				if r.Retried {
					t.Logf("RETRIED: the first attempt had no verdict in %v; its log:\n%s", DefaultTimeout, r.FirstLog)
				}
				if err != nil {
					t.Fatalf("Boot: %v\n%s", err, r.Log)
				}
				if r.Verdict != want {
					t.Fatalf("verdict %v (%q), want %v; log:\n%s", r.Verdict, r.Status, want, r.Log)
				}
				if banner != "" && !r.Saw(banner) {
					t.Fatalf("accepted, but %q never appeared; log:\n%s", banner, r.Log)
				}
				return r
			}
			boot := func(t *testing.T, vars []byte, image string, want Verdict, banner string) {
				t.Helper()
				bootFiles(t, vars, map[string]string{arch.Loader(): image}, want, banner)
			}
			t.Run("SetupModeUnsigned", func(t *testing.T) {
				boot(t, setup, grub, Accepted, grubBanner)
			})
			t.Run("SignedGRUB", func(t *testing.T) {
				boot(t, user, ours.sign(t, grub), Accepted, grubBanner)
			})
			t.Run("SignedKernel", func(t *testing.T) {
				boot(t, user, ours.sign(t, kernel), Accepted, kernelBanner)
			})
			// shim, signed for the firmware, checks the GRUB beside it
			// against db too (Debian's unsigned shim trusts only Debian's
			// CA besides).
			grubOnESP := map[Arch]string{AMD64: "EFI/BOOT/grubx64.efi", ARM64: "EFI/BOOT/grubaa64.efi"}[arch]
			shim := ours.sign(t, filepath.Join(dir, string(arch), "shim.efi"))
			t.Run("ShimSignedGRUB", func(t *testing.T) {
				bootFiles(t, user, map[string]string{arch.Loader(): shim, grubOnESP: ours.sign(t, grub)}, Accepted, grubBanner)
			})
			t.Run("ShimUnsignedGRUB", func(t *testing.T) {
				r := bootFiles(t, user, map[string]string{arch.Loader(): shim, grubOnESP: grub}, Accepted, shimRefusal)
				if r.Saw(grubBanner) {
					t.Errorf("shim started an unsigned GRUB; log:\n%s", r.Log)
				}
			})
			t.Run("Unsigned", func(t *testing.T) {
				boot(t, user, grub, Refused, "")
			})
			t.Run("OtherKey", func(t *testing.T) {
				boot(t, user, other.sign(t, grub), Refused, "")
			})
		})
	}
}

// qemuChildren lists this process's QEMU children that are still alive.
func qemuChildren(t *testing.T) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+1:]) // state, ppid, ...
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) && strings.HasPrefix(s[open+1:end], "qemu-system") && fields[0] != "Z" {
			left = append(left, strings.TrimSpace(s[:end+1]))
		}
	}
	return left
}

// TestBootCancel ends a boot with its context: Boot returns the context's
// error and leaves no QEMU behind.
func TestBootCancel(t *testing.T) {
	testenv.SkipShort(t, "boots QEMU")
	if err := Available(AMD64); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	grub := filepath.Join(images(t), "amd64", "grub.efi")
	vars, err := Vars(AMD64, Keys{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	r, err := Boot(ctx, AMD64, vars, grub)
	// The deadline may fall while the boot disk is made or while QEMU
	// runs (a loaded machine takes longer over mkfs.vfat); either way
	// Boot returns the context's own error.
	if err != context.DeadlineExceeded || r.Verdict != NoVerdict {
		t.Errorf("Boot = %v, %v; want no verdict, %v", r.Verdict, err, context.DeadlineExceeded)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Boot took %v after its context ended", d)
	}
	if left := qemuChildren(t); len(left) > 0 {
		t.Errorf("QEMU left running: %v", left)
	}

	// A context that has already ended stops Boot while it makes the boot
	// disk, and Boot still reports the context's error, not mkfs.vfat's.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if r, err := Boot(done, AMD64, vars, grub); err != context.Canceled || r.Verdict != NoVerdict {
		t.Errorf("Boot with an ended context = %v, %v; want no verdict, %v", r.Verdict, err, context.Canceled)
	}
}

func TestBootBadInput(t *testing.T) {
	if err := Available(AMD64); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	ctx := context.Background()
	if _, err := Boot(ctx, "riscv64", nil, "x.efi"); err == nil {
		t.Error("Boot accepted an unknown architecture")
	}
	if _, err := Boot(ctx, AMD64, make([]byte, 4096), "x.efi"); err == nil {
		t.Error("Boot accepted a variable store of the wrong size")
	}
	vars, err := Vars(AMD64, Keys{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Boot(ctx, AMD64, vars, filepath.Join(t.TempDir(), "missing.efi")); err == nil {
		t.Error("Boot accepted a missing image")
	}
	if _, err := BootFiles(ctx, AMD64, vars, map[string]string{"EFI/BOOT/grubx64.efi": "x"}); err == nil {
		t.Error("BootFiles accepted files without the loader")
	}
}

// TestBootRetry: an attempt that reaches its time without a verdict is made
// once more, the result says so and carries the first attempt's log, and no
// QEMU is left behind.
func TestBootRetry(t *testing.T) {
	testenv.SkipShort(t, "boots QEMU")
	if err := Available(AMD64); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	grub := filepath.Join(images(t), "amd64", "grub.efi")
	vars, err := Vars(AMD64, Keys{})
	if err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { attemptTimeout = d }(attemptTimeout)
	attemptTimeout = 300 * time.Millisecond // no firmware decides that fast
	start := time.Now()
	r, err := Boot(context.Background(), AMD64, vars, grub)
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if !r.Retried || r.Verdict != NoVerdict {
		t.Errorf("Boot = %v, retried %v; want no verdict after a retry", r.Verdict, r.Retried)
	}
	if d := time.Since(start); d < 2*attemptTimeout {
		t.Errorf("Boot returned after %v, less than two attempts of %v", d, attemptTimeout)
	}
	if left := qemuChildren(t); len(left) > 0 {
		t.Errorf("QEMU left running: %v", left)
	}
}

// TestSlots: boots take turns machine-wide; a waiter gives up with its
// context and gets a slot once one is released.
func TestSlots(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var held []func()
	for i := 0; i < max(1, runtime.NumCPU()/2); i++ {
		release, err := acquireSlot(ctx)
		if err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
		held = append(held, release)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if release, err := acquireSlot(short); err != context.DeadlineExceeded {
		if release != nil {
			release()
		}
		t.Fatalf("acquireSlot with every slot held = %v, want %v", err, context.DeadlineExceeded)
	}
	held[0]()
	release, err := acquireSlot(ctx)
	if err != nil {
		t.Fatalf("acquireSlot after a release: %v", err)
	}
	release()
	for _, r := range held[1:] {
		r()
	}
}

// TestCPUTime: the CPU time read for this process grows while it computes.
func TestCPUTime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("CPU time is read from /proc")
	}
	before, ok := cpuTime(os.Getpid())
	if !ok {
		t.Fatal("cpuTime of this process: not readable")
	}
	x := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		x++
	}
	after, _ := cpuTime(os.Getpid())
	if after <= before {
		t.Errorf("cpuTime went from %v to %v over 300 ms of computing (%d loops)", before, after, x)
	}
}
