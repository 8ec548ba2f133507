package server_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/signet-project/signet/server"
)

// failAuditInserts makes every later append to the audit table fail, as a
// full disk or a broken database would, behind the store's back.
func failAuditInserts(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER audit_refused BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
}

// TestNoRecordNoEffect: an administrative change and its audit record are
// one transaction. When the record cannot be written, the change is not
// made: over the network (grant-key-access, new-user, delete-user) and in
// the ceremony (user add, key grant).
func TestNoRecordNoEffect(t *testing.T) {
	f := newOps(t)
	ctx := context.Background()
	rootPW := map[string]string{"password": "root pw"}
	before, err := f.a.Store.LastAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failAuditInserts(t, f.a.Store.Path())

	// serve sends a request that must be dropped: no reply, since none
	// can be recorded.
	serve := func(op, user string, fields, secrets map[string]string) {
		t.Helper()
		r := &server.Request{Op: op, User: user, CN: user, Fields: map[string][]byte{}, Secrets: map[string][]byte{}}
		for k, v := range fields {
			r.Fields[k] = []byte(v)
		}
		for k, v := range secrets {
			r.Secrets[k] = []byte(v)
		}
		if resp, err := f.h.Serve(ctx, r); !errors.Is(err, server.ErrDrop) {
			t.Errorf("%s without its audit record: reply %+v, err %v; want the request dropped", op, resp, err)
		}
	}
	serve("grant-key-access", "alice", fieldsName("key", "fedora", "name", "bob"),
		map[string]string{"passphrase": "alice pass", "new-passphrase": "bob pass"})
	if _, err := f.a.Store.GetAccess(ctx, "fedora", "bob"); err == nil {
		t.Error("grant-key-access left bob's access without an audit record")
	}
	serve("new-user", "root", fieldsName("name", "carol"), rootPW)
	if _, err := f.a.Store.GetUser(ctx, "carol"); err == nil {
		t.Error("new-user added carol without an audit record")
	}
	serve("delete-user", "root", fieldsName("name", "bob"), rootPW)
	if _, err := f.a.Store.GetUser(ctx, "bob"); err != nil {
		t.Errorf("delete-user removed bob without an audit record: %v", err)
	}

	if err := f.a.AddUser(ctx, "dave", false, nil); err == nil {
		t.Error("user add succeeded without an audit record")
	}
	if _, err := f.a.Store.GetUser(ctx, "dave"); err == nil {
		t.Error("user add left dave without an audit record")
	}
	if err := f.a.Grant(ctx, "fedora", "bob", []byte("bob pass"), false); err == nil {
		t.Error("key grant succeeded without an audit record")
	}
	if _, err := f.a.Store.GetAccess(ctx, "fedora", "bob"); err == nil {
		t.Error("key grant left bob's access without an audit record")
	}
	if last, err := f.a.Store.LastAudit(ctx); err != nil || last.ID != before.ID {
		t.Errorf("audit log moved from %d to %d (%v) though every append failed", before.ID, last.ID, err)
	}
}
