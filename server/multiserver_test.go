package server_test

// Two servers of one deployment share one PostgreSQL database: each has
// its own store handle, token session pool, authenticator and unwrap
// cache (internal/servertest's Peer). A change made through one server
// (revoke, delete-user, change-passphrase) takes effect on the other at
// once, although the other's cache holds a successful unwrap: the cache
// is keyed on the wrapped-PIN row, which the other server reads anew for
// every request.

import (
	"context"
	"testing"

	"github.com/signet-project/signet/internal/servertest"
	postgrestest "github.com/signet-project/signet/postgres-test"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
)

func TestTwoServersSharePostgres(t *testing.T) {
	t.Parallel()
	c := postgrestest.Start(t)
	e := servertest.NewOn(t, c.URL(c.CreateDatabase(t)))
	a := e.Handlers
	b := e.Peer("server-b")
	ctx := context.Background()

	key := map[string]string{"key": "fedora"}
	pass := func(p string) map[string]string { return map[string]string{"passphrase": p} }
	root := map[string]string{"password": servertest.RootPW}
	sign := func(h *server.Handlers, user, passphrase string) protocol.ErrorCode {
		t.Helper()
		resp, _ := e.DoOn(h, servertest.Request{Op: "sign-data", User: user, Fields: key, Secrets: pass(passphrase), Payload: []byte("data")})
		return resp.Status
	}
	must := func(what string, got, want protocol.ErrorCode) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: status %v, want %v", what, got, want)
		}
	}
	admin := func(h *server.Handlers, user, op string, fields, secrets map[string]string) {
		t.Helper()
		resp, _ := e.DoOn(h, servertest.Request{Op: op, User: user, Fields: fields, Secrets: secrets})
		must(op, resp.Status, protocol.CodeOK)
	}

	// Both servers sign for alice; both caches now hold her unwrap.
	must("alice on A", sign(a, "alice", servertest.AlicePass), protocol.CodeOK)
	must("alice on B", sign(b, "alice", servertest.AlicePass), protocol.CodeOK)

	// change-passphrase on A: B refuses the old passphrase at once and
	// takes the new one.
	admin(a, "alice", "change-passphrase", key, map[string]string{"passphrase": servertest.AlicePass, "new-passphrase": "alice new"})
	must("alice's old passphrase on B", sign(b, "alice", servertest.AlicePass), protocol.CodeAuthenticationFailed)
	must("alice's new passphrase on B", sign(b, "alice", "alice new"), protocol.CodeOK)

	// revoke-key-access on A: bob, who just signed on B, cannot any more.
	admin(a, "alice", "grant-key-access", map[string]string{"key": "fedora", "name": "bob"},
		map[string]string{"passphrase": "alice new", "new-passphrase": "bob pass"})
	must("bob on B", sign(b, "bob", "bob pass"), protocol.CodeOK)
	admin(a, "root", "revoke-key-access", map[string]string{"key": "fedora", "name": "bob"}, root)
	must("bob on B after the revoke on A", sign(b, "bob", "bob pass"), protocol.CodeAuthenticationFailed)

	// delete-user on A (Sigul's, which wants no accesses left, then the
	// ceremony's forced one): B no longer knows the user.
	admin(a, "root", "delete-user", map[string]string{"name": "bob"}, root)
	resp, _ := e.DoOn(b, servertest.Request{Op: "user-info", User: "root", Fields: map[string]string{"name": "bob"}, Secrets: root})
	must("user-info bob on B after delete-user on A", resp.Status, protocol.CodeUserNotFound)
	if err := e.Admin.AddUser(ctx, "carol", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Admin.Grant(ctx, "fedora", "carol", []byte("carol pass"), false); err != nil {
		t.Fatal(err)
	}
	must("carol on B", sign(b, "carol", "carol pass"), protocol.CodeOK)
	if err := e.Admin.DeleteUser(ctx, "carol", true); err != nil {
		t.Fatal(err)
	}
	must("carol on B after her forced deletion on A", sign(b, "carol", "carol pass"), protocol.CodeAuthenticationFailed)

	// One audit chain, written by both servers, verified through either.
	for _, h := range []*server.Handlers{a, b} {
		n, err := h.Store.VerifyAudit(ctx)
		if err != nil {
			t.Fatalf("VerifyAudit through %s: %v", h.Store.ServerName(), err)
		}
		recs, err := h.Store.ListAudit(ctx, 0, 0)
		if err != nil || len(recs) != n {
			t.Fatalf("ListAudit = %d records, %v; VerifyAudit counted %d", len(recs), err, n)
		}
		by := map[string]int{}
		for _, r := range recs {
			by[r.Server]++
		}
		if by["server-a"] == 0 || by["server-b"] == 0 {
			t.Errorf("records per server: %v; want some from server-a and server-b", by)
		}
	}
}
