// Package fileperm holds the file-mode rules signet's programs share:
// outputs are created with a mode less the umask, as os.WriteFile does,
// and secrets and private keys are read only from files no one else can
// read.
package fileperm

import (
	"bufio"
	"fmt"
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

// Private checks that a file holding a secret or a private key is open to
// its owner alone: no permission bit for group or others. what names the
// file in the message ("token PIN file", "TLS key").
func Private(fi os.FileInfo, path, what string) error {
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("the %s %s has mode %04o: group and others must have no access (mode 0600 or 0400, owned by the user that runs the program: chmod 600 %s)", what, path, m, path)
	}
	return nil
}

// CheckPrivate is Private for a file by name (following symbolic links:
// what counts is the file read).
func CheckPrivate(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return Private(fi, path, what)
}
