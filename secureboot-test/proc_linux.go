package secureboottest

import "syscall"

// sysProcAttr has the kernel kill QEMU if the test process dies first
// (best effort: the signal follows the thread that started QEMU).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
