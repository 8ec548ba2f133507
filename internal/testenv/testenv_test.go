package testenv

import (
	"errors"
	"syscall"
	"testing"
)

// recorder is a testing.TB that records how a test ended instead of ending
// it, so both sides of the rule can be checked in one run.
type recorder struct {
	testing.TB
	failed, skipped bool
	logged          bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Error(...any)          { r.failed = true }
func (r *recorder) Skipf(string, ...any)  { r.skipped = true }
func (r *recorder) Log(...any)            { r.logged = true }
func (r *recorder) Logf(string, ...any)   { r.logged = true }

const missing = "signet-no-such-tool-7f3a"

func TestRule(t *testing.T) {
	for _, ci := range []string{"true", "", "false"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			want := ci == "true"
			r := &recorder{TB: t}
			MustHave(r, "sh", missing)
			if r.failed != want || r.skipped == want {
				t.Errorf("MustHave of a missing tool: failed %v skipped %v, want failed %v", r.failed, r.skipped, want)
			}
			r = &recorder{TB: t}
			if Has(r, missing) || r.failed != want || r.logged == want {
				t.Errorf("Has of a missing tool: failed %v logged %v, want failed %v", r.failed, r.logged, want)
			}
			r = &recorder{TB: t}
			MustHave(r, "sh")
			if !Has(r, "sh") || r.failed || r.skipped {
				t.Errorf("a present tool: failed %v skipped %v", r.failed, r.skipped)
			}
		})
	}
}

func TestFreePorts(t *testing.T) {
	ports := FreePorts(t, 5)
	if len(ports) != 5 {
		t.Fatalf("got %d ports, want 5", len(ports))
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || p > 65535 || seen[p] {
			t.Fatalf("bad or repeated port %d in %v", p, ports)
		}
		seen[p] = true
	}
	// Outside the kernel's ephemeral range, so no connect or listen on
	// port 0 anywhere on the machine can be given one of them.
	for _, p := range ports {
		if p < portFloor || p >= ephemeralLow() {
			t.Errorf("port %d is not in %d-%d", p, portFloor, ephemeralLow()-1)
		}
	}
	// Reserved while the test runs: another reservation (in this process
	// or another, through the same lock files) never gets them.
	more, locks, err := reservePorts(200)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(locks)
	for _, p := range more {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
	}
	if _, err := lockPort(ports[0]); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Errorf("locking a reserved port: %v, want EWOULDBLOCK", err)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	if out := Run(t, dir, []string{"SIGNET_TESTENV_RUN=x1"}, "sh", "-c", `echo "$SIGNET_TESTENV_RUN"; pwd; echo e >&2`); out != "x1\n"+dir+"\ne\n" {
		t.Errorf("Run's output %q", out)
	}
	r := &recorder{TB: t}
	Run(r, "", nil, "sh", "-c", "exit 3")
	if !r.failed {
		t.Error("Run of a program that exits 3 did not fail the test")
	}
}
