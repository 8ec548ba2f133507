// Package secret reads PINs, passphrases and passwords for signet's
// programs from the places they may come from: a file open to its owner
// alone (mode 0600 or 0400; a systemd credential is one), an inherited
// file descriptor, standard input, or a prompt on the terminal without
// echo. Never from argv or the environment, which other users and crash
// reports can read. Secrets are zeroed with the builtin clear once used;
// Harden keeps them out of core dumps.
package secret

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/term"

	"github.com/signet-project/signet/internal/fileperm"
)

// maxLen bounds what is read from a file or descriptor.
const maxLen = 4096

// Source says where one secret comes from. At most one of File and FD is
// set; with neither, Read prompts on the terminal unless Batch is set.
type Source struct {
	What  string // "token PIN", "passphrase for key fedora-43", ...
	File  string
	FD    int // -1 or 0: unset (stdin is read with File "-")
	Batch bool
	// Confirm asks twice on a prompt, for a new passphrase.
	Confirm bool
}

// Set reports whether the secret was given explicitly (file or fd).
func (s Source) Set() bool { return s.File != "" || s.FD > 0 }

// Read returns the secret. One trailing newline (LF or CRLF) is removed
// from files and descriptors, so `echo secret > file` works. An empty
// secret is refused.
func (s Source) Read() ([]byte, error) {
	if s.File != "" && s.FD > 0 {
		return nil, fmt.Errorf("the %s is given twice: use a file or a descriptor, not both", s.What)
	}
	var b []byte
	var err error
	switch {
	case s.File == "-":
		b, err = readLimited(os.Stdin)
	case s.File != "":
		var f *os.File
		if f, err = os.Open(s.File); err == nil {
			// The mode of the file opened, not of a name checked
			// before: a file others can read is refused unread.
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil && fi.Mode().IsRegular() {
				err = fileperm.Private(fi, s.File, s.What+" file")
			}
			if err == nil {
				b, err = readLimited(f)
			}
			f.Close()
		}
	case s.FD > 0:
		f := os.NewFile(uintptr(s.FD), "descriptor "+strconv.Itoa(s.FD))
		b, err = readLimited(f)
		f.Close()
	default:
		return s.prompt()
	}
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", s.What, err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("the %s is empty", s.What)
	}
	return b, nil
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxLen+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxLen {
		clear(b)
		return nil, fmt.Errorf("longer than %d bytes", maxLen)
	}
	return b, nil
}

// ErrNoTerminal: a secret was needed, none was given, and there is no
// terminal to ask on.
var ErrNoTerminal = errors.New("no terminal to prompt on")

func (s Source) prompt() ([]byte, error) {
	if s.Batch {
		return nil, fmt.Errorf("the %s is needed: give it with a file or descriptor option (batch mode never prompts)", s.What)
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("the %s is needed and there is no terminal to ask on: give it with a file or descriptor option: %w", s.What, ErrNoTerminal)
	}
	defer tty.Close()
	ask := func(p string) ([]byte, error) { return PromptOn(tty, p+": ") }
	b, err := ask("Enter the " + s.What)
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", s.What, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("the %s is empty", s.What)
	}
	if s.Confirm {
		again, err := ask("Repeat the " + s.What)
		defer clear(again)
		if err != nil {
			clear(b)
			return nil, fmt.Errorf("reading the %s: %w", s.What, err)
		}
		if !bytes.Equal(b, again) {
			clear(b)
			return nil, fmt.Errorf("the two entries of the %s differ", s.What)
		}
	}
	return b, nil
}

// PromptOn shows prompt on the terminal tty and reads one line from it
// without echo.
func PromptOn(tty *os.File, prompt string) ([]byte, error) {
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		clear(b)
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// ErrNoNUL: the input ended before the NUL that ends a batch-mode secret.
var ErrNoNUL = errors.New("unexpected end of input when reading a batch mode password")

// ReadNUL reads one secret ended by a NUL byte, as Sigul's batch mode
// passes secrets on standard input, in the order they are asked for. It
// reads at most maxLen bytes.
func ReadNUL(r io.ByteReader) ([]byte, error) {
	// Room for the longest: appending never copies the secret to a
	// larger array, leaving the old one unzeroed.
	b := make([]byte, 0, maxLen)
	for {
		c, err := r.ReadByte()
		if err != nil {
			clear(b)
			if err == io.EOF {
				return nil, ErrNoNUL
			}
			return nil, err
		}
		if c == 0 {
			return b, nil
		}
		if len(b) == maxLen {
			clear(b)
			return nil, fmt.Errorf("a batch mode secret is longer than %d bytes", maxLen)
		}
		b = append(b, c)
	}
}

// Confirm asks a yes/no question on the terminal; in batch mode, or
// without a terminal, it answers no.
func Confirm(question string, batch bool) bool {
	if batch {
		return false
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer tty.Close()
	fmt.Fprintf(tty, "%s [y/N] ", question)
	line, _ := bufio.NewReader(tty).ReadString('\n')
	return line == "y\n" || line == "yes\n" || line == "Y\n"
}

// ReadFile reads a secret from a file (see Source.Read).
func ReadFile(path, what string) ([]byte, error) {
	return Source{What: what, File: path, Batch: true}.Read()
}
