package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server"
)

// TestDecoyCostFollowsStoredRows: after the operator raises the KDF cost,
// a refusal for a pair without an access row must not cost today's
// configured cost while every existing row costs the old one; the decoy
// costs what stored rows cost, the same each time for the same pair.
func TestDecoyCostFollowsStoredRows(t *testing.T) {
	// Not parallel: it counts hsm.KDFRuns, which every test running a
	// KDF at the same time would add to.
	ctx := context.Background()
	a, _ := newAdmin(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	old := cheapKDF
	raised := hsm.KDFParams{Time: old.Time + 1, MemoryKiB: old.MemoryKiB, Threads: old.Threads}
	must(a.AddUser(ctx, "alice", false, nil))
	must(a.AddUser(ctx, "bob", false, nil))
	_, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "k", Type: hsm.Ed25519, Owner: "alice", OwnerPassphrase: []byte("alice pass")})
	must(err)
	must(a.Grant(ctx, "k", "bob", []byte("bob pass"), false))

	// Every row was made at the old cost; the server now runs with the
	// raised one.
	au, err := server.NewAuthenticator(a.Store, raised, time.Minute)
	must(err)
	for i := 0; i < 50; i++ {
		user, key := fmt.Sprintf("nobody%d", i), "k"
		if i%2 == 1 {
			user, key = "bob", fmt.Sprintf("nokey%d", i)
		}
		p, err := au.DecoyCost(ctx, user, key)
		must(err)
		if p != old {
			t.Fatalf("decoy for (%s, %s) costs %+v; every stored row costs %+v", user, key, p, old)
		}
	}
	before := hsm.KDFRuns()
	if _, err := au.KeyUser(ctx, "nobody", "k", []byte("x"), false); err != server.ErrAuthFailed {
		t.Fatalf("KeyUser without a row: %v", err)
	}
	if n := hsm.KDFRuns() - before; n != 1 {
		t.Errorf("a refusal without a row ran the KDF %d times, want 1", n)
	}

	// Rows at both costs: pairs without a row get both, each pair always
	// the same one.
	a.KDF = raised
	must(a.AddUser(ctx, "carol", false, nil))
	must(a.AddUser(ctx, "dave", false, nil))
	must(a.Grant(ctx, "k", "carol", []byte("carol pass"), false))
	must(a.Grant(ctx, "k", "dave", []byte("dave pass"), false))
	au, err = server.NewAuthenticator(a.Store, raised, time.Minute)
	must(err)
	seen := map[hsm.KDFParams]int{}
	for i := 0; i < 200; i++ {
		user := fmt.Sprintf("nobody%d", i)
		p, err := au.DecoyCost(ctx, user, "k")
		must(err)
		again, err := au.DecoyCost(ctx, user, "k")
		must(err)
		if again != p {
			t.Fatalf("decoy cost for %s changed between two asks: %+v then %+v", user, p, again)
		}
		if p != old && p != raised {
			t.Fatalf("decoy cost %+v is no stored row's cost", p)
		}
		seen[p]++
	}
	if seen[old] == 0 || seen[raised] == 0 {
		t.Errorf("over 200 pairs the decoys cost %v; want both stored costs", seen)
	}
}
