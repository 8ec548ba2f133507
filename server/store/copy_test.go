package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// richSeed fills s with every kind of row, NULLs and gaps in the ids
// included (a deleted user and key), and audit records.
func richSeed(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	seed(t, s)
	if _, err := s.AddUser(ctx, User{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	k := testKey("k3")
	k.PGPCreated = time.Unix(1700000000, 0)
	k.PGPCertificate = []byte{0, 1, 2, 0xff}
	k.Fingerprint = "0123456789abcdef0123456789abcdef01234567"
	k.Backup = true
	if _, err := s.AddKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCertificate(ctx, "k3", "ca", []byte("der-ca"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Grant(ctx, "k3", "carol", []byte("pin-carol-k3"), true); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "robot", 25)
}

// dump returns everything a store holds, through its API.
func dump(t *testing.T, s *Store) string {
	t.Helper()
	ctx := context.Background()
	var b bytes.Buffer
	users, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := s.AllAccesses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "%+v\n%+v\n%+v\n", users, keys, acc)
	for _, k := range keys {
		certs, err := s.ListCertificates(ctx, k.Name)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%+v\n", certs)
	}
	recs, err := s.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "%+v\n", recs)
	return b.String()
}

func TestCopyToPostgres(t *testing.T) {
	ctx := context.Background()
	src, _ := newStore(t)
	richSeed(t, src)
	pg := backend{"postgres", dialectPostgres}
	dst, dstLoc := pg.newStore(t)

	rep, err := Copy(ctx, dst, src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"users": 3, "keys": 3, "key_accesses": 3, "certificates": 1, "audit": 25}
	if !reflect.DeepEqual(rep.Rows, want) || rep.AuditRecords != 25 || rep.Last.ID != 25 {
		t.Errorf("report = %+v, want rows %v and 25 audit records", rep, want)
	}
	if a, b := dump(t, src), dump(t, dst); a != b {
		t.Errorf("contents differ:\nsource:\n%s\ntarget:\n%s", a, b)
	}
	// The target carries on: new ids after the copied ones, and the chain
	// continues.
	u, err := dst.AddUser(ctx, User{Name: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID <= 3 { // alice, bob and carol are 1 to 3
		t.Errorf("new user id %d collides with copied ids", u.ID)
	}
	if _, err := dst.Grant(ctx, "k2", "dave", []byte("pin"), false); err != nil {
		t.Fatal(err)
	}
	appendN(t, dst, "after", 2)
	if n, err := dst.VerifyAudit(ctx); n != 27 || err != nil {
		t.Errorf("VerifyAudit after more appends = %d, %v", n, err)
	}

	// A target with data is refused, and left as it was.
	before := dump(t, dst)
	if _, err := Copy(ctx, dst, src); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("copy into a non-empty target: %v, want ErrNotEmpty", err)
	}
	if dump(t, dst) != before {
		t.Error("a refused copy changed the target")
	}

	// CompareContents notices a difference a verified chain would not: a
	// changed wrapped PIN.
	raw := pg.rawDB(t, dstLoc)
	other := openStore(t, filepath.Join(t.TempDir(), "other.db"))
	if err := CompareContents(ctx, dst, other); err == nil {
		t.Error("CompareContents found an empty store equal to a full one")
	}
	dst2, _ := pg.newStore(t)
	if _, err := Copy(ctx, dst2, src); err != nil {
		t.Fatal(err)
	}
	rawExec(t, raw, `UPDATE key_accesses SET wrapped_pin = ? WHERE id = 1`, []byte("other"))
	dst3 := openStore(t, dstLoc)
	if err := CompareContents(ctx, dst2, dst3); err == nil {
		t.Error("CompareContents missed a changed wrapped PIN")
	}
}

// TestCopyBack copies PostgreSQL to SQLite, the way back.
func TestCopyBack(t *testing.T) {
	ctx := context.Background()
	pg := backend{"postgres", dialectPostgres}
	src, _ := pg.newStore(t)
	richSeed(t, src)
	dst, _ := newStore(t)
	if _, err := Copy(ctx, dst, src); err != nil {
		t.Fatal(err)
	}
	if a, b := dump(t, src), dump(t, dst); a != b {
		t.Errorf("contents differ:\nsource:\n%s\ntarget:\n%s", a, b)
	}
}
