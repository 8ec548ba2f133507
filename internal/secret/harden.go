package secret

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Harden keeps the process's memory, which holds PINs and passphrases,
// out of core dumps and away from other processes of the same user: no
// core file (RLIMIT_CORE 0) and not dumpable (PR_SET_DUMPABLE 0, which
// also refuses ptrace attachment and /proc/PID/mem to the same user).
// Every program that holds a secret calls it first thing.
func Harden() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("setting RLIMIT_CORE to 0: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}
