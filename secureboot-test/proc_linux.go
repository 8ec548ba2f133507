package secureboottest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sysProcAttr has the kernel kill QEMU if the test process dies first
// (best effort: the signal follows the thread that started QEMU).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// slotWait bounds the wait for a free slot; a boot holds one for at most
// two attempts of DefaultTimeout.
const slotWait = 10 * time.Minute

// acquireSlot waits for one of this machine's QEMU slots: an flock on one
// of half as many files as there are CPUs (at least one) under the
// temporary directory, so that boots started by different test processes
// (go test runs packages in parallel) take turns instead of starving each
// other under software emulation. The lock goes with the process, so a
// killed test never leaves a slot taken. release gives it back.
func acquireSlot(ctx context.Context) (release func(), err error) {
	dir := filepath.Join(os.TempDir(), "signet-secureboottest-slots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	n := max(1, runtime.NumCPU()/2)
	deadline := time.NewTimer(slotWait)
	defer deadline.Stop()
	for {
		for i := 0; i < n; i++ {
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("slot-%d", i)), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				return nil, err
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
				return func() { f.Close() }, nil
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, fmt.Errorf("secureboottest: no QEMU slot free in %v (locks under %s)", slotWait, dir)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cpuTime is the user and system CPU time process pid has used, read from
// /proc/pid/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func cpuTime(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}
