package protocol

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// kojiErrorMagic begins the payload a bridge forwards, in place of an RPM,
// when its Koji part of a sign-rpm or sign-rpms item failed (PROTOCOL.md,
// "Koji"). An RPM begins with its lead magic ed ab ee db, so the two cannot
// be confused. The bridge cannot answer an item itself (the reply MACs are
// the server's), so it asks the server to answer KOJI_ERROR. Nothing here
// is authenticated, and need not be: it can only make the server refuse.
const kojiErrorMagic = "\x00signet-bridge-koji-error\x00"

// MaxKojiErrorMessage bounds the message of a KojiErrorPayload, so that
// the server's reply, "Koji: " and the message, fits a field (§6.4).
const MaxKojiErrorMessage = 200

// KojiErrorPayload returns the payload a bridge forwards for an item whose
// Koji part failed, carrying msg (made a safe string and shortened).
func KojiErrorPayload(msg string) []byte {
	return append([]byte(kojiErrorMagic), SafeMessage(msg, MaxKojiErrorMessage)...)
}

// KojiErrorMessage reports whether payload (or its first bytes) is a
// KojiErrorPayload, and its message.
func KojiErrorMessage(payload []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(payload, []byte(kojiErrorMagic))
	if !ok {
		return "", false
	}
	return SafeMessage(string(rest), MaxKojiErrorMessage), true
}

// KojiErrorMaxLen is the longest a KojiErrorPayload can be.
const KojiErrorMaxLen = len(kojiErrorMagic) + MaxKojiErrorMessage

// SafeMessage turns s into a safe string (§3.2: ASCII from space to
// 0x7f) of at most max bytes: control characters become spaces, other
// characters "?", and a long text is cut with "...".
func SafeMessage(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20:
			return ' '
		case r > 0x7e:
			return '?'
		}
		return r
	}, s)
	if len(s) <= max {
		return s
	}
	return s[:max-3] + "..."
}

// WriteCanonicalItemPrefixed is WriteCanonicalItem for a payload whose
// first bytes, prefix, a bridge has already read from p (to import the
// signature header of a signed RPM into Koji before relaying it).
func WriteCanonicalItemPrefixed(w *ChunkWriter, header, prefix []byte, p *PayloadReader) error {
	if uint64(len(prefix)) > p.Len() {
		return fmt.Errorf("protocol: prefix of %d bytes is longer than the %d-byte payload", len(prefix), p.Len())
	}
	if err := w.WriteChunk(Outer, header); err != nil {
		return err
	}
	if err := writeCanonicalData(w, p.Len(), io.MultiReader(bytes.NewReader(prefix), p)); err != nil {
		return err
	}
	if err := p.Finish(); err != nil {
		return err
	}
	mac := p.MAC()
	if mac == nil {
		return fmt.Errorf("protocol: %s MAC was not read", p.what)
	}
	return w.WriteChunk(Outer, mac)
}
