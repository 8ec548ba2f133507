// Package fileperm holds the file-mode rules signet's programs share:
// outputs are created with a mode less the umask, as os.WriteFile does,
// and secrets and private keys are read only from files no one else can
// read.
package fileperm

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

var umask = sync.OnceValue(func() os.FileMode {
	// /proc says it without changing it (Linux 4.7 and later).
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return os.FileMode(n) & os.ModePerm
				}
			}
		}
	}
	// Otherwise set it and put it back, once.
	m := syscall.Umask(0o022)
	syscall.Umask(m)
	return os.FileMode(m) & os.ModePerm
})

// Umask returns the process's file mode creation mask, read once.
func Umask() os.FileMode { return umask() }
