// Package yubihsmsim builds a PKCS#11 module for load tests that forwards
// every call to SoftHSM2 but meets a YubiHSM 2's limits: each signature
// or decryption takes at least a configured time for its key (published
// figures by default: RSA-4096 852 ms, RSA-2048 139 ms, P-256 73 ms),
// the device does one operation at a time across all its sessions, and at
// most 16 sessions are open (the 17th gets CKR_SESSION_COUNT; the token
// info reports 16). The module is csrc/yubihsmsim.c, compiled with gcc
// against the PKCS#11 headers of github.com/miekg/pkcs11.
//
// The module reads its configuration from the environment when it is
// initialised (see Env and the variables below). A process initialises a
// module path once (package hsm keeps it loaded), so tests that need
// another configuration build another copy.
package yubihsmsim

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/signet-project/signet/internal/testenv"
)

//go:embed csrc/yubihsmsim.c
var source []byte

// Environment variables the module reads.
const (
	// EnvModule names the real module calls are forwarded to (required).
	EnvModule = "SIGNET_YHSIM_MODULE"
	// EnvScale multiplies every delay (default 1; 0.1 runs at a tenth).
	EnvScale = "SIGNET_YHSIM_SCALE"
	// EnvMaxSessions is the session limit (default 16).
	EnvMaxSessions = "SIGNET_YHSIM_MAX_SESSIONS"
)

// Published YubiHSM 2 signing times in milliseconds, the module's defaults.
const (
	RSA4096Millis = 852
	RSA2048Millis = 139
	P256Millis    = 73
)

// MaxSessions is the YubiHSM 2's session limit, the module's default.
const MaxSessions = 16

// DelayEnv names the variable that sets the delay in milliseconds for a
// key: RSA2048, RSA3072, RSA4096, P256, P384, P521, ED25519 or OTHER.
func DelayEnv(key string) string { return "SIGNET_YHSIM_" + key + "_MS" }

// Env returns the environment entries that forward to real at the given
// delay scale, with the published delays.
func Env(real string, scale float64) []string {
	return []string{EnvModule + "=" + real, EnvScale + "=" + strconv.FormatFloat(scale, 'f', -1, 64)}
}

// HeaderDir returns the directory of the PKCS#11 headers the module is
// compiled against: github.com/miekg/pkcs11's, from the module cache.
func HeaderDir() (string, error) {
	//lint:ignore SA1019 only a fallback, for when no go is on PATH
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	out, err := exec.Command(gobin, "list", "-m", "-f", "{{.Dir}}", "github.com/miekg/pkcs11").Output()
	if err != nil {
		return "", fmt.Errorf("yubihsmsim: locating the PKCS#11 headers (go list -m github.com/miekg/pkcs11): %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(dir, "pkcs11.h")); err != nil {
		return "", fmt.Errorf("yubihsmsim: no pkcs11.h in %q", dir)
	}
	return dir, nil
}

// Build compiles the module into dir and returns the path of the shared
// library.
func Build(dir string) (string, error) {
	inc, err := HeaderDir()
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "yubihsmsim.c")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		return "", err
	}
	so := filepath.Join(dir, "yubihsmsim.so")
	cmd := exec.Command("gcc", "-Wall", "-Werror", "-O2", "-shared", "-fPIC", "-fvisibility=hidden",
		"-I", inc, "-o", so, src, "-ldl", "-lpthread")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("yubihsmsim: gcc: %v\n%s", err, out)
	}
	return so, nil
}

var (
	buildMu  sync.Mutex
	builtDir string
	builtSO  string
)

// Module returns a fresh copy of the module for a test, so that the
// environment the test sets before loading it is the configuration it
// gets. It is compiled once per test process; the copy is removed by
// t.Cleanup. A missing gcc fails under CI and skips otherwise.
func Module(t testing.TB) string {
	t.Helper()
	testenv.MustHave(t, "gcc")
	buildMu.Lock()
	if builtSO == "" {
		dir, err := os.MkdirTemp("", "signet-yhsim-")
		if err != nil {
			buildMu.Unlock()
			t.Fatal(err)
		}
		so, err := Build(dir)
		if err != nil {
			os.RemoveAll(dir)
			buildMu.Unlock()
			t.Fatal(err)
		}
		builtDir, builtSO = dir, so
	}
	so := builtSO
	buildMu.Unlock()
	data, err := os.ReadFile(so)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "yubihsmsim.so")
	if err := os.WriteFile(cp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return cp
}

// Cleanup removes the compiled module; call it from TestMain after the
// tests ran.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if builtDir != "" {
		os.RemoveAll(builtDir)
		builtDir, builtSO = "", ""
	}
}
