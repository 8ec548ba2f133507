package client

import (
	"testing"
	"time"
)

// TestRetryWait: each wait is jittered between half and all of a base
// that doubles per round up to MaxBackoff.
func TestRetryWait(t *testing.T) {
	p := RetryPolicy{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	for round, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			w := p.wait(round)
			if w < base/2 || w > base {
				t.Fatalf("round %d: wait %v outside [%v, %v]", round, w, base/2, base)
			}
			seen[w] = true
		}
		if len(seen) < 2 {
			t.Fatalf("round %d: 200 waits all %v: no jitter", round, seen)
		}
	}
	if d := (RetryPolicy{}).withDefaults(); d.Rounds != 3 || d.Resumes != 3 || d.MaxTime != 2*time.Minute {
		t.Fatalf("defaults %+v", d)
	}
}
