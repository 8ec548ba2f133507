package hsm_test

import (
	"testing"
	"time"

	"github.com/signet-project/signet/hsm"
)

// TestUnwrapperZeroesExpiredEntries: a cached PIN that no request asks for
// again is zeroed and dropped when it expires, not kept until the next
// unwrap happens to sweep it.
func TestUnwrapperZeroesExpiredEntries(t *testing.T) {
	params := hsm.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}
	b := hsm.Binding{Key: "k", User: "u"}
	w, err := hsm.WrapPIN([]byte("123456"), []byte("pass"), b, params)
	if err != nil {
		t.Fatal(err)
	}
	u := hsm.NewUnwrapper(50*time.Millisecond, 16)
	pin, err := u.Unwrap(w, []byte("pass"), b)
	if err != nil || string(pin) != "123456" {
		t.Fatalf("Unwrap = %q, %v", pin, err)
	}
	cached := hsm.CachedPINs(u)
	if len(cached) != 1 || string(cached[0]) != "123456" {
		t.Fatalf("cache holds %q", cached)
	}
	// The timer fires after the TTL; give it up to 20 s on a loaded
	// machine.
	deadline := time.Now().Add(20 * time.Second)
	for len(hsm.CachedPINs(u)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the expired entry is still cached 20 s after its TTL of 50 ms")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range cached[0] {
		if c != 0 {
			t.Fatalf("the expired entry's PIN was dropped but not zeroed: %q", cached[0])
		}
	}
	// Forget zeroes too.
	u = hsm.NewUnwrapper(time.Hour, 16)
	u.Unwrap(w, []byte("pass"), b)
	cached = hsm.CachedPINs(u)
	u.Forget()
	if len(cached) != 1 || string(cached[0]) != "\x00\x00\x00\x00\x00\x00" {
		t.Fatalf("after Forget the PIN buffer holds %q", cached)
	}
}
