package server

import (
	"strings"
	"testing"

	"github.com/signet-project/signet/protocol"
)

// TestSafeMessage: every message a handler makes fits the protocol's
// message field, whatever characters the error carried.
func TestSafeMessage(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"plain":                        "plain",
		"file starts with 23 21 2f …)": "file starts with 23 21 2f ...)",
		"line one\nline two":           "line one; line two",
		"caf\u00e9\x00\x7f":            "caf???",
	}
	for in, want := range cases {
		if got := safeMessage(in); got != want || !protocol.IsSafeString(got) {
			t.Errorf("safeMessage(%q) = %q, want %q", in, got, want)
		}
	}
	if got := safeMessage(strings.Repeat("é", 300)); len(got) != 255 || !protocol.IsSafeString(got) {
		t.Errorf("a long message became %d bytes: %q", len(got), got)
	}
}
