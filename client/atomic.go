package client

import (
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/signet-project/signet/internal/fileperm"
)

// WriteFileAtomic creates path with the bytes fn writes, atomically: fn
// writes to a temporary file beside path, which is synced and renamed to
// path only if fn returns nil. On any error the temporary file is removed,
// so nothing appears at path and nothing is left behind. An existing file
// at path is replaced only on success. perm is the mode of the new file
// less the process's umask, as with os.WriteFile: 0o644 for what anyone
// may read, 0o600 for what only the user may (decrypted plaintext).
func WriteFileAtomic(path string, perm os.FileMode, fn func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := fn(f); err != nil {
		return err
	}
	if err := f.Chmod(perm &^ fileperm.Umask()); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return &os.PathError{Op: "rename", Path: path, Err: errors.New("is a directory")}
	}
	return os.Rename(tmp, path)
}
