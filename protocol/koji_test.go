package protocol

import (
	"strings"
	"testing"
)

func TestKojiErrorPayload(t *testing.T) {
	p := KojiErrorPayload("koji getRPM: no RPM x-1-1.noarch:\n not found \xff é")
	msg, ok := KojiErrorMessage(p)
	if !ok || msg != "koji getRPM: no RPM x-1-1.noarch:  not found ? ?" || !IsSafeString(msg) {
		t.Fatalf("%q %v", msg, ok)
	}
	long := KojiErrorPayload(strings.Repeat("x", 1000))
	if len(long) > KojiErrorMaxLen {
		t.Fatalf("%d bytes, max %d", len(long), KojiErrorMaxLen)
	}
	if m, _ := KojiErrorMessage(long); !strings.HasSuffix(m, "...") || len(m) != MaxKojiErrorMessage {
		t.Fatalf("long message %q", m)
	}
	// An RPM (lead magic) or anything else is not a Koji error.
	for _, b := range [][]byte{{0xed, 0xab, 0xee, 0xdb, 0, 0}, nil, []byte("\x00signet-bridge-koji-erro")} {
		if _, ok := KojiErrorMessage(b); ok {
			t.Errorf("%q taken for a Koji error", b)
		}
	}
}
