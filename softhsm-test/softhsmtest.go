// Package softhsmtest gives tests throwaway SoftHSM2 tokens.
//
// SoftHSM2 reads SOFTHSM2_CONF once, when a process first initialises the
// module, so tokens used in-process share one configuration per test
// process: Main (or the first New) points SOFTHSM2_CONF at a private
// temporary directory, each New initialises a fresh token with its own
// label and PINs there, and Main removes the directory when the tests end.
// Tests that run signet's commands as subprocesses use NewDir instead: a
// directory and SOFTHSM2_CONF of their own, removed by t.Cleanup.
//
// A missing SoftHSM2 is a test failure, not a skip: scripts/install-deps.sh
// installs it.
package softhsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/signet-project/signet/hsm"
)

// ModuleEnv names an environment variable that overrides the module path
// (the arm64 test run points it at an extracted arm64 SoftHSM2).
const ModuleEnv = "SIGNET_SOFTHSM2_MODULE"

var defaultModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",  // Debian, Ubuntu
	"/usr/lib64/pkcs11/libsofthsm2.so", // Fedora
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// Module returns the SoftHSM2 module path: $SIGNET_SOFTHSM2_MODULE, or the
// first of the usual install locations that exists.
func Module() (string, error) {
	if p := os.Getenv(ModuleEnv); p != "" {
		return p, nil
	}
	for _, p := range defaultModules {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("SoftHSM2 is not installed (looked in %s); run scripts/install-deps.sh", strings.Join(defaultModules, ", "))
}

// Token is a freshly initialised SoftHSM2 token.
type Token struct {
	Module string
	Label  string
	PIN    []byte
	SOPIN  []byte
	// Conf is the SOFTHSM2_CONF that names the token's directory.
	Conf string
}

// Config returns an hsm.Config that selects this token by label.
func (tk *Token) Config() hsm.Config {
	return hsm.Config{Module: tk.Module, TokenLabel: tk.Label}
}

// Open opens the token and logs in; the token is closed by t.Cleanup.
func (tk *Token) Open(t testing.TB) *hsm.Token {
	t.Helper()
	tok, err := hsm.Open(tk.Config())
	if err != nil {
		t.Fatalf("opening token %q: %v", tk.Label, err)
	}
	t.Cleanup(func() { tok.Close() })
	if err := tok.Login(tk.PIN); err != nil {
		t.Fatalf("login to token %q: %v", tk.Label, err)
	}
	return tok
}

var (
	// initMu serialises New's token initialisations.
	initMu   sync.Mutex
	procOnce sync.Once
	procDir  string
	procErr  error
)

// setup points this process's SoftHSM2 at a private directory.
func setup() (string, error) {
	procOnce.Do(func() {
		procDir, procErr = os.MkdirTemp("", "signet-softhsm-")
		if procErr != nil {
			return
		}
		conf, err := writeConf(procDir)
		if err != nil {
			procErr = err
			return
		}
		procErr = os.Setenv("SOFTHSM2_CONF", conf)
	})
	return procDir, procErr
}

func writeConf(dir string) (string, error) {
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	return conf, os.WriteFile(conf, []byte(body), 0o600)
}

// Main runs the tests of a package that uses New and removes the shared
// token directory afterwards. Call it from TestMain: os.Exit(softhsmtest.Main(m)).
func Main(m *testing.M) int {
	if _, err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "softhsmtest:", err)
		return 1
	}
	code := m.Run()
	os.RemoveAll(procDir)
	return code
}

// New initialises a new token in this process's SoftHSM2 and returns it.
// Its label, user PIN and SO PIN are random.
func New(t testing.TB) *Token {
	t.Helper()
	mod, err := Module()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup(); err != nil {
		t.Fatal(err)
	}
	tk := &Token{Module: mod, Label: "t-" + randHex(6), PIN: []byte(randHex(8)), SOPIN: []byte(randHex(8)), Conf: os.Getenv("SOFTHSM2_CONF")}
	// One at a time: hsm.InitToken picks the first free slot, which two
	// parallel tests would both pick.
	initMu.Lock()
	_, err = hsm.InitToken(mod, tk.Label, tk.SOPIN, tk.PIN)
	initMu.Unlock()
	if err != nil {
		t.Fatalf("initialising a SoftHSM2 token: %v", err)
	}
	return tk
}

// NewDir makes a SoftHSM2 directory and configuration of the test's own,
// initialises one token in it with softhsm2-util, and returns it. Pass
// Env() to subprocesses. Everything is removed by t.Cleanup.
func NewDir(t testing.TB) *Token {
	t.Helper()
	mod, err := Module()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf, err := writeConf(dir)
	if err != nil {
		t.Fatal(err)
	}
	tk := &Token{Module: mod, Label: "signet-test", PIN: []byte(randHex(8)), SOPIN: []byte(randHex(8)), Conf: conf}
	// softhsm2-util takes PINs only as arguments; these are throwaway test PINs.
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", tk.Label,
		"--pin", string(tk.PIN), "--so-pin", string(tk.SOPIN))
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tk
}

// Env returns the environment for a subprocess that should see this token.
func (tk *Token) Env() []string {
	return append(os.Environ(), "SOFTHSM2_CONF="+tk.Conf)
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
