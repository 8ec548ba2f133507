// Package artifacts finds the real artifacts tests sign: packages and
// images no one here wrote, fetched from where their makers publish them.
//
//   - RPMUtilsTestdata: the test RPMs of the Go module
//     github.com/sassoftware/go-rpmutils (every payload compression),
//     through the Go module proxy.
//   - FedoraZlib: a package Fedora built and signed, from the test
//     packages of github.com/sassoftware/relic, through the proxy.
//   - EFIImages: Debian's unsigned shim, GRUB and kernel for arm64 and
//     amd64, extracted by scripts/fetch-efi-images.sh from Debian's
//     archive.
//
// When they cannot be had, the test is skipped, except in CI (CI=true),
// where it fails: CI must never pass by skipping.
package artifacts

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/signet-project/signet/internal/testenv"
)

// RPMUtilsVersion is the go-rpmutils release whose test packages are used.
const RPMUtilsVersion = "v0.4.0"

var (
	rpmOnce   sync.Once
	rpmDir    string
	rpmErr    string
	relicOnce sync.Once
	relicDir  string
	relicErr  string
	efiOnce   sync.Once
	efiDir    string
	efiErr    string
)

// RPMUtilsTestdata returns the directory holding go-rpmutils' test RPMs
// (read-only, in the module cache).
func RPMUtilsTestdata(t testing.TB) string {
	t.Helper()
	rpmOnce.Do(func() {
		dir, err := moduleDir("github.com/sassoftware/go-rpmutils@" + RPMUtilsVersion)
		rpmDir, rpmErr = filepath.Join(dir, "testdata"), err
	})
	if rpmErr != "" {
		testenv.Unavailable(t, "%s", rpmErr)
	}
	return rpmDir
}

// RelicVersion is the relic release whose test packages are used.
const RelicVersion = "v7.6.2"

// FedoraZlib returns the path of zlib-1.2.8-10.fc24.i686.rpm, a package
// built and signed by Fedora (key fdb19c98), from the test packages of the
// Go module github.com/sassoftware/relic/v7 (read-only, in the module
// cache).
func FedoraZlib(t testing.TB) string {
	t.Helper()
	relicOnce.Do(func() {
		dir, err := moduleDir("github.com/sassoftware/relic/v7@" + RelicVersion)
		relicDir, relicErr = dir, err
	})
	if relicErr != "" {
		testenv.Unavailable(t, "%s", relicErr)
	}
	return filepath.Join(relicDir, "functest", "packages", "zlib-1.2.8-10.fc24.i686.rpm")
}

// moduleDir downloads a module through the Go module proxy and returns its
// directory in the module cache, or an error text.
func moduleDir(modVersion string) (string, string) {
	tmp, err := os.MkdirTemp("", "signet-gomod-")
	if err != nil {
		return "", err.Error()
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "mod", "download", "-json", modVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var m struct{ Dir string }
	if err == nil {
		err = json.Unmarshal(out, &m)
	}
	if err != nil || m.Dir == "" {
		msg := "go mod download " + modVersion + ": " + strings.TrimSpace(string(out))
		if err != nil {
			msg += ": " + err.Error()
		}
		return "", msg
	}
	return m.Dir, ""
}

// EFIImages returns the directory where scripts/fetch-efi-images.sh put
// arm64/ and amd64/{shim,grub,kernel}.efi.
func EFIImages(t testing.TB) string {
	t.Helper()
	efiOnce.Do(func() {
		out, err := exec.Command("bash", filepath.Join(Root(), "scripts/fetch-efi-images.sh")).CombinedOutput()
		if err != nil {
			efiErr = "scripts/fetch-efi-images.sh: " + err.Error() + "\n" + string(out)
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		efiDir = lines[len(lines)-1]
	})
	if efiErr != "" {
		testenv.Unavailable(t, "%s", efiErr)
	}
	return efiDir
}

// Root returns the repository's top directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "../..")
}
