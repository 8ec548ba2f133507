//go:build !linux

package main

import "syscall"

// noCoreDumps keeps this process's memory out of core files while it holds
// a wrap key or its shares.
func noCoreDumps() error {
	return syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
}
