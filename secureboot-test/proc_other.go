//go:build !linux

package secureboottest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
