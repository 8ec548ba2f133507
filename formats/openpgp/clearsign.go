package openpgp

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// ErrNotCleartext reports input that ClearSign refuses because a cleartext
// signed message could not carry it faithfully or gpg could not verify it:
// a NUL byte, invalid UTF-8, a carriage return that does not end a line, or
// a line longer than MaxClearSignLine. The error text names the line. Such
// data should be signed with a detached binary signature instead.
var ErrNotCleartext = errors.New("openpgp: input is not text for a cleartext signed message")

// MaxClearSignLine is the longest line, in bytes, that ClearSign writes:
// gpg 2.2 reads a cleartext signed message in lines of at most 19999 bytes
// with the LF, and reports a BAD signature for a message with a longer line
// (gpg --clearsign itself breaks a longer input line into several lines,
// which changes the text). The length is counted after dash escaping and the
// removal of trailing spaces and tabs, so a line of 19998 bytes that starts
// with "-" or "From " is too long.
const MaxClearSignLine = 19998

// hashNames are the hash names of the "Hash:" armor header of a cleartext
// signed message (RFC 4880 section 7, RFC 9580 section 7).
var hashNames = map[crypto.Hash]string{crypto.SHA256: "SHA256", crypto.SHA384: "SHA384", crypto.SHA512: "SHA512"}

// ClearSign reads text from r and writes to w an OpenPGP cleartext signed
// message (RFC 4880 section 7, RFC 9580 section 7), the output of
// gpg --clearsign: the "-----BEGIN PGP SIGNED MESSAGE-----" line, a
// "Hash:" header naming Key.Hash (SHA256, or SHA384 for P-384 keys), a
// blank line, the dash-escaped text and an armored v4 signature of type
// canonical text (0x01) made at sigTime (now if zero) with Key.Hash.
//
// The text is normalised, and the signature is over the normalised text:
//
//   - lines end in LF or CRLF; each line is written with LF and hashed
//     with CRLF between lines;
//   - spaces and tabs at the end of every line are removed, in the output
//     as well as in the hash, so that what is shown is what is signed
//     (gpg 2.2 writes them out and only leaves them out of the hash;
//     verifiers ignore them);
//   - one line ending at the very end of the input is not part of the
//     signed text: it is the line break before "-----BEGIN PGP
//     SIGNATURE-----", which belongs to the framework. Input with and
//     without a final newline therefore gives the same message, and a
//     verifier (gpg --output, sq verify) gives the text back with one
//     final LF. Empty input signs the empty text;
//   - lines starting with "-" are written with "- " in front, and so
//     (as RFC 4880 recommends and gpg does by default) are lines starting
//     with "From " after trailing blanks are removed; verifiers take the
//     "- " off again and it is not signed.
//
// This differs from the detached TextSignature of SignReader and
// SignDetached, which, like gpg 2.2's detached text signatures, keeps
// trailing blanks in the hash and signs the final line ending.
//
// A cleartext signed message is text, so ClearSign refuses, with an error
// that wraps ErrNotCleartext and names the line, input holding a NUL byte
// or invalid UTF-8, a carriage return that is not part of a CRLF line
// ending (gpg and sq disagree about such CRs) and a line longer than
// MaxClearSignLine. Other control characters are kept. The input is
// streamed: ClearSign holds a 32 KiB read buffer and at most one line's
// worth of pending spaces and tabs, whatever the input.
//
// It refuses a sigTime before the key's creation time without writing
// anything. Otherwise the message is written while the input is read, so
// after a later error (refused or unreadable input, a failing signer) w
// holds an incomplete message, which the caller must discard.
func (k *Key) ClearSign(w io.Writer, r io.Reader, sigTime time.Time) error {
	h := k.hash
	c := &clearText{w: w, line: 1}
	sig, err := k.signature(byte(TextSignature), h, sigTime, nil, func(hw io.Writer) error {
		c.h = hw
		if _, err := fmt.Fprintf(w, "-----BEGIN PGP SIGNED MESSAGE-----\nHash: %s\n\n", hashNames[h]); err != nil {
			return fmt.Errorf("writing message: %w", err)
		}
		return c.copy(r)
	})
	if errors.Is(err, ErrNotCleartext) {
		return err
	}
	if err != nil {
		return fmt.Errorf("openpgp: clear-signing with key %s: %w", k.FingerprintHex(), err)
	}
	armored, err := Armor(sig, "PGP SIGNATURE")
	if err != nil {
		return err
	}
	if _, err := w.Write(armored); err != nil {
		return fmt.Errorf("openpgp: clear-signing with key %s: writing message: %w", k.FingerprintHex(), err)
	}
	return nil
}

// clearText turns text into the body of a cleartext signed message (out)
// and the canonical text that is signed (hashed), a byte at a time, so that
// reads may split lines, CRLFs and UTF-8 sequences anywhere.
type clearText struct {
	w       io.Writer // the message
	h       io.Writer // the signature hash
	out     []byte    // message bytes not yet written to w
	hashed  []byte    // signed bytes not yet written to h
	line    int       // current line, from 1
	sep     bool      // a line has ended and the CRLF after it is not yet hashed
	cr      bool      // the previous byte was a CR
	blanks  []byte    // spaces and tabs that may yet turn out to end the line
	tooMany bool      // more blanks were pending than a line can hold
	lineLen int       // bytes of the current line in the message
	head    []byte    // the line's first output bytes while dash escaping is undecided
	decided bool      // dash escaping of the current line is decided
	partial []byte    // incomplete UTF-8 sequence
}

var fromLine = []byte("From ")

func (c *clearText) copy(r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, rerr := r.Read(buf)
		for _, b := range buf[:n] {
			if err := c.add(b); err != nil {
				return err
			}
		}
		if err := c.flush(); err != nil {
			return err
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading data: %w", rerr)
		}
	}
	switch {
	case c.cr:
		return c.refuse("carriage return at the end of the input without a line feed")
	case len(c.partial) > 0:
		return c.refuse("invalid UTF-8 (sequence cut off by the end of the input)")
	}
	// Trailing blanks of the last line are dropped. Unless the input ended
	// with a line ending, which then serves as the framework's line break,
	// one is added.
	if !c.sep {
		c.endLine()
	}
	return c.flush()
}

func (c *clearText) refuse(what string) error {
	return fmt.Errorf("%w: line %d: %s; sign it as binary data with a detached signature instead", ErrNotCleartext, c.line, what)
}

// add processes one input byte.
func (c *clearText) add(b byte) error {
	if c.cr && b != '\n' {
		return c.refuse("carriage return not followed by a line feed")
	}
	if len(c.partial) > 0 && b < utf8.RuneSelf {
		return c.refuse("invalid UTF-8 (incomplete sequence)")
	}
	switch {
	case b == '\n':
		c.startLine()
		c.cr = false
		c.blanks, c.tooMany = c.blanks[:0], false // trailing blanks (and the CR) are dropped
		c.endLine()
		c.sep = true
		c.line++
	case b == '\r':
		c.cr = true
	case b == 0:
		return c.refuse("NUL byte")
	case b == ' ' || b == '\t':
		c.startLine()
		if len(c.blanks) < MaxClearSignLine {
			c.blanks = append(c.blanks, b)
		} else {
			c.tooMany = true // the line is too long unless they are trailing
		}
	case b < utf8.RuneSelf:
		c.startLine()
		return c.text(b)
	default:
		c.startLine()
		c.partial = append(c.partial, b)
		if !utf8.FullRune(c.partial) {
			return nil
		}
		if r, size := utf8.DecodeRune(c.partial); r == utf8.RuneError && size == 1 {
			return c.refuse("invalid UTF-8")
		}
		err := c.text(c.partial...)
		c.partial = c.partial[:0]
		return err
	}
	return nil
}

// startLine hashes the CRLF that separates the current line from the one
// before, now that it is known not to be the input's final line ending.
func (c *clearText) startLine() {
	if c.sep {
		c.hashed = append(c.hashed, '\r', '\n')
		c.sep = false
	}
}

// text adds bytes that are not blanks, and so the blanks before them, to
// the current line.
func (c *clearText) text(p ...byte) error {
	if c.tooMany {
		return c.refuse(fmt.Sprintf("line longer than %d bytes (gpg cannot verify it in a cleartext signed message)", MaxClearSignLine))
	}
	c.hashed = append(c.hashed, c.blanks...)
	c.emit(c.blanks)
	c.blanks = c.blanks[:0]
	c.hashed = append(c.hashed, p...)
	c.emit(p)
	if c.lineLen > MaxClearSignLine {
		return c.refuse(fmt.Sprintf("line longer than %d bytes (gpg cannot verify it in a cleartext signed message)", MaxClearSignLine))
	}
	return nil
}

// emit writes line content to the message, deciding on dash escaping once
// the line's start shows whether it begins with "-" or "From ".
func (c *clearText) emit(p []byte) {
	c.lineLen += len(p)
	if c.decided {
		c.out = append(c.out, p...)
		return
	}
	c.head = append(c.head, p...)
	if len(c.head) == 0 {
		return
	}
	n := min(len(c.head), len(fromLine))
	escape := c.head[0] == '-' || string(c.head[:n]) == string(fromLine)
	if !escape && n < len(fromLine) && string(c.head) == string(fromLine[:n]) {
		return // a prefix of "From ": wait for more
	}
	if escape {
		c.out = append(c.out, '-', ' ')
		c.lineLen += 2
	}
	c.out = append(c.out, c.head...)
	c.head = c.head[:0]
	c.decided = true
}

// endLine ends the current line of the message.
func (c *clearText) endLine() {
	c.out = append(c.out, c.head...) // a prefix of "From ", not escaped
	c.out = append(c.out, '\n')
	c.head = c.head[:0]
	c.decided = false
	c.lineLen = 0
}

func (c *clearText) flush() error {
	c.h.Write(c.hashed) // a hash.Hash never fails
	c.hashed = c.hashed[:0]
	if len(c.out) > 0 {
		if _, err := c.w.Write(c.out); err != nil {
			return fmt.Errorf("writing message: %w", err)
		}
		c.out = c.out[:0]
	}
	return nil
}

// SignDetachedArmored is SignDetached with the signature in ASCII armor
// ("PGP SIGNATURE"), the form of gpg --armor --detach-sign that gpg --verify
// and sq verify --detached read.
func (k *Key) SignDetachedArmored(r io.Reader, text bool, sigTime time.Time) ([]byte, error) {
	sig, err := k.SignDetached(r, text, sigTime)
	if err != nil {
		return nil, err
	}
	return Armor(sig, "PGP SIGNATURE")
}
