package openpgp

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrNotGitTag reports a payload that CheckGitTag refuses.
var ErrNotGitTag = errors.New("openpgp: not an unsigned annotated git tag of a commit")

// gitTagHeaders are the starts of the first four lines of a tag object
// that Sigul signs.
var gitTagHeaders = []string{"object ", "type commit", "tag ", "tagger "}

// gitSignatureStarts are the lines at which git takes a tag's signature to
// begin (OpenPGP, X.509 and SSH signatures).
var gitSignatureStarts = [][]byte{
	[]byte("-----BEGIN PGP SIGNATURE-----"),
	[]byte("-----BEGIN PGP MESSAGE-----"),
	[]byte("-----BEGIN SIGNED MESSAGE-----"),
	[]byte("-----BEGIN SSH SIGNATURE-----"),
}

// CheckGitTag checks that tag is a raw annotated git tag object, as
// `git cat-file tag NAME` prints it, that sign-git-tag may sign: UTF-8,
// with the lines "object <id>", "type commit", "tag <name>" and
// "tagger <ident>" first, ending with a line feed (a signature appended
// after an unterminated last line would not verify), and without a
// signature: a line that starts a PGP, X.509 or SSH signature block would
// make git take the bytes before it as the signed part. Its errors wrap
// ErrNotGitTag and say what is wrong.
//
// The signature is SignDetachedArmored(tag, false, ...): a binary (0x00)
// detached signature over the whole object, which AppendGitTagSignature
// appends.
func CheckGitTag(tag []byte) error {
	if !utf8.Valid(tag) {
		return fmt.Errorf("%w: the tag object is not UTF-8", ErrNotGitTag)
	}
	rest := tag
	for i, want := range gitTagHeaders {
		line, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return fmt.Errorf("%w: the tag object has %d lines, want at least 4 (object, type, tag, tagger)", ErrNotGitTag, i)
		}
		good := bytes.HasPrefix(line, []byte(want))
		if want == "type commit" {
			good = string(line) == want // not "type commits"
		}
		if !good {
			return fmt.Errorf("%w: line %d is %.60q, want one starting %q", ErrNotGitTag, i+1, line, want)
		}
		rest = after
	}
	if len(tag) == 0 || tag[len(tag)-1] != '\n' {
		return fmt.Errorf("%w: the tag object does not end with a line feed", ErrNotGitTag)
	}
	for n, line := range bytes.Split(tag, []byte("\n")) {
		for _, start := range gitSignatureStarts {
			if bytes.HasPrefix(line, start) {
				return fmt.Errorf("%w: line %d starts a signature (%s): the tag is signed already", ErrNotGitTag, n+1, start)
			}
		}
	}
	return nil
}

// AppendGitTagSignature returns the signed tag object: tag followed by the
// armored signature armoredSig (as SignDetachedArmored makes it), which
// `git mktag` stores and `git verify-tag` verifies. The tag must have
// passed CheckGitTag. A line feed is added after the signature if it has
// none.
func AppendGitTagSignature(tag, armoredSig []byte) []byte {
	out := make([]byte, 0, len(tag)+len(armoredSig)+1)
	out = append(append(out, tag...), armoredSig...)
	if len(armoredSig) > 0 && armoredSig[len(armoredSig)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}
