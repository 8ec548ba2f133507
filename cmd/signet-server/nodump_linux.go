package main

import "golang.org/x/sys/unix"

// noCoreDumps keeps this process's memory out of core dumps while it holds
// a wrap key or its shares: no core file, and not dumpable (ptrace by
// other processes of the same user is refused too).
func noCoreDumps() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return err
	}
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
