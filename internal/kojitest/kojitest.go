// Package kojitest runs a real Koji hub for tests: upstream's unmodified
// hub on its own PostgreSQL, started by ../shared/third-party/koji-stack.sh
// on free loopback ports in a temporary directory, and stopped when the
// test ends.
//
//	hub := kojitest.Start(t, kojitest.Options{Kojid: true}) // builder daemon too: tagBuild/moveBuild tasks run
//	hub.AddUser(t, "alice", "sign")
//	hub.AddTag(t, "candidate", "zlib")
//	nvr := hub.ImportRPM(t, "zlib-1.2.8-10.fc24.i686.rpm") // a build, state COMPLETE
//	hub.TagBuild(t, "candidate", nvr)                      // tagBuildBypass: immediate
//	c := hub.Client(t, "signer")                           // *koji.Client with signer's certificate
//	hub.CLI(t, "list-tagged", "candidate")                 // Koji's own CLI, as admin
//
// Start skips the test under -short and when ../shared/third-party is
// absent; it fails when that folder is present but the stack does not come
// up. It needs root (PostgreSQL runs as user postgres); without root it
// skips, or fails under CI=true.
package kojitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/koji"
	"github.com/signet-project/signet/internal/testenv"
)

// Options for Start.
type Options struct {
	// Kojid also runs a builder daemon, so that tagBuild and moveBuild
	// tasks complete. The daemon is made blind to the machine's load
	// (see loadShim).
	Kojid bool
	// Plugins are hub plugins to enable (koji-stack.sh --plugins).
	Plugins []string
}

// Hub is a running Koji stack.
type Hub struct {
	// Dir is the stack's work directory (koji-stack.sh's W).
	Dir string
	// URL is the hub's HTTPS endpoint (certificate login), HTTPURL its
	// plain HTTP one, TopURL the topdir's URL (packages, signed copies).
	URL, HTTPURL, TopURL string
	// CA is the PEM file of the CA that issued the hub's and the users'
	// certificates.
	CA string
	// Ports: PostgreSQL, hub HTTP, hub HTTPS, topdir HTTP.
	PGPort, HTTPPort, HTTPSPort, TopPort int

	script string
	upEnv  []string // environment for "up" only
}

// ThirdParty returns ../shared/third-party beside the repository, skipping
// t when it is absent and failing it when it lacks koji-stack.sh.
func ThirdParty(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("kojitest: cannot locate the source tree")
	}
	// file is REPO/internal/kojitest/kojitest.go.
	repo := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	dir := filepath.Join(filepath.Dir(repo), "shared", "third-party")
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		t.Skipf("kojitest: %s is absent: the real Koji hub comes from koji-stack.sh there (../shared beside the repository)", dir)
	} else if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"koji-stack.sh", "koji-hubserver.py", "koji/kojihub/kojihub.py"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("kojitest: %s is present but broken: %v", dir, err)
		}
	}
	return dir
}

// Start brings a Koji stack up and registers its teardown with t.Cleanup.
func Start(t testing.TB, opts Options) *Hub {
	t.Helper()
	testenv.SkipShort(t, "the real Koji hub (PostgreSQL and Python processes)")
	tp := ThirdParty(t)
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "kojitest: koji-stack.sh must run as root (PostgreSQL runs as user postgres)")
	}
	// Not t.TempDir: user postgres must be able to search the path.
	parent, err := os.MkdirTemp("", "signet-koji-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	ports := testenv.FreePorts(t, 4)
	var upEnv []string
	if opts.Kojid {
		upEnv = append(upEnv, "LD_PRELOAD="+loadShim(t, parent))
	}
	h := &Hub{
		upEnv:  upEnv,
		Dir:    filepath.Join(parent, "w"),
		PGPort: ports[0], HTTPPort: ports[1], HTTPSPort: ports[2], TopPort: ports[3],
		script: filepath.Join(tp, "koji-stack.sh"),
	}
	h.URL = fmt.Sprintf("https://127.0.0.1:%d/kojihub", h.HTTPSPort)
	h.HTTPURL = fmt.Sprintf("http://127.0.0.1:%d/kojihub", h.HTTPPort)
	h.TopURL = fmt.Sprintf("http://127.0.0.1:%d", h.TopPort)
	h.CA = filepath.Join(h.Dir, "certs", "ca.crt")

	args := []string{"up", h.Dir}
	if opts.Kojid {
		args = append(args, "--kojid")
	}
	if len(opts.Plugins) > 0 {
		args = append(args, "--plugins", strings.Join(opts.Plugins, ","))
	}
	t.Cleanup(func() {
		out, err := h.run(context.Background(), "down", h.Dir)
		if err != nil {
			t.Errorf("koji-stack.sh down: %v\n%s", err, out)
		}
		os.RemoveAll(parent)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := h.runEnv(ctx, h.upEnv, args...); err != nil {
		logs, _ := os.ReadFile(filepath.Join(h.Dir, "log", "hub.log"))
		t.Fatalf("koji-stack.sh %s: %v\n%s\nhub.log (end):\n%s", strings.Join(args, " "), err, out, tail(logs, 4000))
	}
	// env.sh names the URLs: check they are the ones computed above.
	env, err := os.ReadFile(filepath.Join(h.Dir, "env.sh"))
	if err != nil {
		t.Fatalf("koji-stack.sh up left no env.sh: %v", err)
	}
	if !bytes.Contains(env, []byte(h.URL)) || !bytes.Contains(env, []byte(h.TopURL)) {
		t.Fatalf("koji-stack.sh env.sh does not name %s and %s:\n%s", h.URL, h.TopURL, env)
	}
	return h
}

func (h *Hub) run(ctx context.Context, args ...string) ([]byte, error) {
	return h.runEnv(ctx, nil, args...)
}

// runEnv runs koji-stack.sh with extra environment variables (which the
// processes it starts inherit).
func (h *Hub) runEnv(ctx context.Context, extra []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{h.script}, args...)...)
	cmd.Env = append(append(os.Environ(), extra...),
		"KOJI_PG_PORT="+strconv.Itoa(h.PGPort),
		"KOJI_HUB_HTTP="+strconv.Itoa(h.HTTPPort),
		"KOJI_HUB_HTTPS="+strconv.Itoa(h.HTTPSPort),
		"KOJI_TOP_HTTP="+strconv.Itoa(h.TopPort),
		"KOJI_UP_TIMEOUT=180", // a loaded machine
	)
	cmd.WaitDelay = 10 * time.Second
	return cmd.CombinedOutput()
}

// loadShim builds, in dir, a shared object whose getloadavg(3) reports
// an idle machine, for the stack's processes through LD_PRELOAD. kojid
// takes no task while the 1-minute load average exceeds 4 per CPU (the
// readiness check in koji/daemon.py, not configurable), which a 2-CPU
// machine running the suite exceeds for minutes; tagBuild and moveBuild
// would then wait until their callers give up. Nothing else of Koji
// changes, and nothing outside the stack sees the shim.
func loadShim(t testing.TB, dir string) string {
	t.Helper()
	testenv.MustHave(t, "gcc")
	src, so := filepath.Join(dir, "loadavg.c"), filepath.Join(dir, "loadavg.so")
	code := "int getloadavg(double l[], int n) {\n\tint i;\n\tfor (i = 0; i < n && i < 3; i++)\n\t\tl[i] = 0;\n\treturn i;\n}\n"
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-o", so, src).CombinedOutput(); err != nil {
		t.Fatalf("kojitest: building the getloadavg shim: %v\n%s", err, out)
	}
	if err := os.Chmod(so, 0o755); err != nil {
		t.Fatal(err)
	}
	return so
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Cert returns the PEM file holding user's certificate and key (users
// admin, signer, bridge, kojibuilder, and those added with AddUser).
func (h *Hub) Cert(user string) string {
	return filepath.Join(h.Dir, "certs", user+".pem")
}

// CLI runs Koji's own command-line client as admin (or, with "-p PROFILE"
// first, as signer or bridge) and returns its standard output.
func (h *Hub) CLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.CLIErr(args...)
	if err != nil {
		t.Fatalf("koji %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// CLIErr is CLI returning the error (with standard error in it).
func (h *Hub) CLIErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(h.Dir, "koji"), args...)
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v\n%s%s", err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}

// AddUser creates a Koji user with the given permissions (for instance
// "sign"). Its certificate is not made; the bridge logs in on its behalf.
func (h *Hub) AddUser(t testing.TB, name string, perms ...string) {
	t.Helper()
	h.CLI(t, "add-user", name)
	for _, p := range perms {
		h.CLI(t, "grant-permission", p, name)
	}
}

// AddTag creates a tag and adds packages to its list (owner admin).
func (h *Hub) AddTag(t testing.TB, tag string, pkgs ...string) {
	t.Helper()
	h.CLI(t, "add-tag", tag)
	if len(pkgs) > 0 {
		h.CLI(t, append([]string{"add-pkg", "--owner", "admin", tag}, pkgs...)...)
	}
}

// ImportRPM imports an RPM file as a build of its own (koji import
// --create-build) and returns the build's N-V-R. Several RPMs of one
// build: import the first with ImportRPM, the others with ImportMore.
func (h *Hub) ImportRPM(t testing.TB, path string) string {
	t.Helper()
	nvr := rpmNVR(t, path)
	h.CLI(t, "import", "--create-build", path)
	return nvr
}

// ImportRPMs imports RPM files, each as a build of its own, in one run of
// Koji's CLI, and returns their builds' N-V-Rs.
func (h *Hub) ImportRPMs(t testing.TB, paths ...string) []string {
	t.Helper()
	var nvrs []string
	for _, p := range paths {
		nvrs = append(nvrs, rpmNVR(t, p))
	}
	h.CLI(t, append([]string{"import", "--create-build"}, paths...)...)
	return nvrs
}

// ImportMore imports further RPMs into builds that already exist.
func (h *Hub) ImportMore(t testing.TB, paths ...string) {
	t.Helper()
	h.CLI(t, append([]string{"import"}, paths...)...)
}

// TagBuild tags a build at once (tagBuildBypass, as admin; no task).
func (h *Hub) TagBuild(t testing.TB, tag, nvr string) {
	t.Helper()
	h.CLI(t, "call", "tagBuildBypass", tag, nvr)
}

// Client returns a koji.Client of the hub with user's certificate (not
// logged in: call SSLLogin).
func (h *Hub) Client(t testing.TB, user string) *koji.Client {
	t.Helper()
	conf, err := koji.TLSConfig(h.CA, h.Cert(user), "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := koji.New(h.URL, koji.Options{TLS: conf, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rpmNVR reads name-version-release from an RPM file with rpm's own query.
func rpmNVR(t testing.TB, path string) string {
	t.Helper()
	testenv.MustHave(t, "rpm")
	out, err := exec.Command("rpm", "-qp", "--nosignature", "--nodigest", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}", path).Output()
	if err != nil {
		t.Fatalf("rpm -qp %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}
