package hsm_test

import (
	"crypto"
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/hsm"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// TestSessionUseAndWait checks the figures the server's metrics export:
// slots in use, operations waiting for one, and each operation's wait.
func TestSessionUseAndWait(t *testing.T) {
	tk := softhsmtest.New(t)
	cfg := tk.Config()
	cfg.MaxSessions = 2
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if err := tok.Login(tk.PIN); err != nil {
		t.Fatal(err)
	}
	key, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.Ed25519, Label: "wait"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := key.Sign(nil, []byte("warm"), crypto.Hash(0)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration
	tok.ObserveWait(func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() })
	defer tok.ObserveWait(nil)

	// A free slot: no wait.
	if _, err := key.Sign(nil, []byte("free"), crypto.Hash(0)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(waits) == 0 || waits[len(waits)-1] != 0 {
		t.Fatalf("a signature with free slots reported waits %v, want a last wait of 0", waits)
	}
	waits = nil
	mu.Unlock()
	if n := tok.SessionsInUse(); n != 0 {
		t.Fatalf("idle token: %d sessions in use", n)
	}

	// Both slots held: three signatures queue.
	release := hsm.HoldSlots(tok, 2)
	if n := tok.SessionsInUse(); n != 2 {
		t.Fatalf("two slots held: %d in use", n)
	}
	held := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte{byte(i)}
			sig, err := key.Sign(nil, msg, crypto.Hash(0))
			if err == nil && !ed25519.Verify(key.Public().(ed25519.PublicKey), msg, sig) {
				t.Errorf("bad signature")
			}
			errs <- err
		}()
	}
	for i := 0; tok.SessionsWaiting() != 3; i++ {
		if i == 3000 {
			t.Fatalf("after 30 s, %d signatures wait for a session, want 3", tok.SessionsWaiting())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	release()
	heldFor := time.Since(held)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, w := tok.SessionsInUse(), tok.SessionsWaiting(); n != 0 || w != 0 {
		t.Fatalf("after the signatures: %d in use, %d waiting", n, w)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 3 {
		t.Fatalf("3 signatures reported %d waits: %v", len(waits), waits)
	}
	for _, d := range waits {
		if d < 50*time.Millisecond || d > heldFor+time.Minute {
			t.Fatalf("waits %v: each should be at least the 50 ms the slots stayed held after all three queued", waits)
		}
	}
}
