//go:build !linux

package secureboottest

import (
	"context"
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// acquireSlot does not limit boots outside Linux.
func acquireSlot(context.Context) (func(), error) { return func() {}, nil }

// cpuTime is unknown outside Linux: attempts are timed by the clock alone.
func cpuTime(int) (time.Duration, bool) { return 0, false }
