package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	postgrestest "github.com/signet-project/signet/postgres-test"
)

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`:                                 `SELECT 1`,
		`a = ? AND b = ?`:                          `a = $1 AND b = $2`,
		`x = '?' AND y = ? AND "q?" = ?`:           `x = '?' AND y = $1 AND "q?" = $2`,
		`VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`: `VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
	} {
		if got := dialectPostgres.rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
		if got := dialectSQLite.rebind(in); got != in {
			t.Errorf("SQLite rebind changed %q to %q", in, got)
		}
	}
}

func TestURLPasswordHandling(t *testing.T) {
	for _, tt := range []struct {
		url      string
		has      bool
		redacted string
	}{
		{"postgres://signet@db.example:5432/signet?sslmode=verify-full", false, "postgres://signet@db.example:5432/signet?sslmode=verify-full"},
		{"postgres://signet:s3cret@db.example/signet", true, "postgres://signet@db.example/signet"},
		{"postgresql://db.example/signet?user=signet&password=s3cret", true, "postgresql://db.example/signet?password=REDACTED&user=signet"},
		{"postgres://db.example/signet?sslpassword=s3cret", true, "postgres://db.example/signet?sslpassword=REDACTED"},
		{"postgres:///signet?host=/run/postgresql", false, "postgres:///signet?host=%2Frun%2Fpostgresql"},
	} {
		if got := URLHasPassword(tt.url); got != tt.has {
			t.Errorf("URLHasPassword(%s) = %v, want %v", tt.url, got, tt.has)
		}
		got := RedactURL(tt.url)
		if got != tt.redacted || strings.Contains(got, "s3cret") {
			t.Errorf("RedactURL(%s) = %s, want %s", tt.url, got, tt.redacted)
		}
	}
	// Open refuses a password in the URL, without echoing it, before
	// connecting anywhere.
	_, err := Open(context.Background(), "postgres://signet:s3cret@127.0.0.1:1/signet")
	if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "password") {
		t.Errorf("Open with a password in the URL: %v", err)
	}
	if !IsPostgres("PostgreSQL://x/y") || IsPostgres("/var/lib/signet/postgres://x") || IsPostgres("signet.db") {
		t.Error("IsPostgres misclassifies")
	}
}

// TestPostgresPassword logs in over TCP with scram-sha-256, the password
// given in Options (as signet-server reads it from a private file): the
// right one works, a wrong one fails without appearing in the error.
func TestPostgresPassword(t *testing.T) {
	c := postgrestest.Shared(t)
	db := c.CreateDatabase(t)
	const pw = "correct horse battery"
	c.CreateRole(t, "signet_pw", pw)
	if _, err := c.Psql(db, "GRANT ALL ON SCHEMA public TO signet_pw"); err != nil {
		t.Fatal(err)
	}
	url := c.TCPURL("signet_pw", db)
	ctx := context.Background()
	s, err := OpenWith(ctx, url, Options{Password: []byte(pw), ServerName: "pw-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.AppendAudit(ctx, AuditRecord{Operation: "x", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	if s.Path() != url || !s.IsPostgres() {
		t.Errorf("Path() = %q, IsPostgres %v", s.Path(), s.IsPostgres())
	}
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	_, err = OpenWith(ctx, url, Options{Password: []byte("wrong guess 42")})
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if strings.Contains(err.Error(), "wrong guess 42") {
		t.Errorf("error shows the password: %v", err)
	}
	// A passfile (libpq's format) works too.
	pf := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(pf, []byte(fmt.Sprintf("127.0.0.1:%d:%s:signet_pw:%s\n", c.Port, db, pw)), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, url+"&passfile="+pf)
	if err != nil {
		t.Fatalf("with passfile: %v", err)
	}
	s2.Close()
}

// TestAuditServerName checks that every record names the server that wrote
// it, on both backends, and that two servers' records form one chain.
func TestAuditServerName(t *testing.T) { forBackends(t, testAuditServerName) }

func testAuditServerName(t *testing.T, b backend) {
	ctx := context.Background()
	loc := b.newLocation(t)
	var stores []*Store
	for _, name := range []string{"signet-a", "signet-b"} {
		s, err := OpenWith(ctx, loc, Options{ServerName: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() { appendN(t, s, "robot", 20) })
	}
	wg.Wait()
	recs, err := stores[0].ListAudit(ctx, 0, 0)
	if err != nil || len(recs) != 40 {
		t.Fatalf("ListAudit = %d records, %v", len(recs), err)
	}
	count := map[string]int{}
	for _, r := range recs {
		count[r.Server]++
	}
	if count["signet-a"] != 20 || count["signet-b"] != 20 {
		t.Errorf("records per server = %v, want 20 each", count)
	}
	if n, err := stores[1].VerifyAudit(ctx); n != 40 || err != nil {
		t.Errorf("VerifyAudit = %d, %v", n, err)
	}
	if _, err := OpenWith(ctx, loc, Options{ServerName: "bad\nname"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("server name with a newline: %v", err)
	}
	host, _ := os.Hostname()
	s := openStore(t, loc)
	if host != "" && s.ServerName() != host {
		t.Errorf("default server name = %q, want the host name %q", s.ServerName(), host)
	}
}

// TestMigrateFromSchema2 opens a SQLite database as signet wrote it before
// audit records named their server (schema version 2, version 1 hashes):
// it migrates forward, the old records still verify, and new ones chain on.
func TestMigrateFromSchema2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	saved := migrations
	migrations = saved[:2]
	s, err := Open(ctx, path)
	migrations = saved
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	prev := genesisHash()
	for id := int64(1); id <= 3; id++ {
		at := formatTime(time.Date(2026, 1, 1, 0, 0, int(id), 0, time.UTC))
		h := auditHash(prev, id, at, "", "alice", "new-user", "", "", "", "ok")
		rawExec(t, db, `INSERT INTO audit (id, at, actor, operation, key_name, detail, digest, result, prev_hash, hash)
			VALUES (?, ?, 'alice', 'new-user', '', '', '', 'ok', ?, ?)`, id, at, prev, h)
		prev = h
	}
	if _, err := s.AddUser(ctx, User{Name: "x"}); err == nil {
		t.Fatal("closed store still works")
	}
	s, err = OpenWith(ctx, path, Options{ServerName: "new"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.databaseSchemaVersion(ctx); err != nil || v != schemaVersion() {
		t.Fatalf("schema version after migration = %d, %v", v, err)
	}
	r, err := s.AppendAudit(ctx, AuditRecord{Actor: "bob", Operation: "sign-data", Result: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != 4 || !bytes.Equal(r.PrevHash, prev) || r.Server != "new" {
		t.Errorf("new record = %+v", r)
	}
	if n, err := s.VerifyAudit(ctx); n != 4 || err != nil {
		t.Errorf("VerifyAudit = %d, %v; want 4", n, err)
	}
	recs, _ := s.ListAudit(ctx, 0, 1)
	if len(recs) != 1 || recs[0].Server != "" {
		t.Errorf("old record = %+v, want no server", recs)
	}
}

// TestWithAuditBothBackends: an admin change and its audit record commit
// together, and a failed change leaves no record.
func TestWithAuditBothBackends(t *testing.T) { forBackends(t, testWithAudit) }

func testWithAudit(t *testing.T, b backend) {
	s, _ := b.newStore(t)
	ctx := WithAudit(context.Background(), func() AuditRecord {
		return AuditRecord{Actor: "root", Operation: "new-user", Detail: "alice", Result: "ok"}
	})
	if _, err := s.AddUser(ctx, User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	rec, ok := AuditWritten(ctx)
	if !ok || rec.ID != 1 || rec.Server != s.ServerName() {
		t.Fatalf("AuditWritten = %+v, %v", rec, ok)
	}
	ctx2 := WithAudit(context.Background(), func() AuditRecord {
		return AuditRecord{Actor: "root", Operation: "new-user", Detail: "alice again", Result: "ok"}
	})
	if _, err := s.AddUser(ctx2, User{Name: "alice"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate AddUser = %v", err)
	}
	if _, ok := AuditWritten(ctx2); ok {
		t.Error("a refused change wrote its audit record")
	}
	// A record that cannot be stored undoes the change.
	ctx3 := WithAudit(context.Background(), func() AuditRecord { return AuditRecord{Actor: "root"} })
	if _, err := s.AddUser(ctx3, User{Name: "bob"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("AddUser with an unstorable record = %v", err)
	}
	if _, err := s.GetUser(context.Background(), "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob was added without his audit record: %v", err)
	}
	if n, err := s.VerifyAudit(context.Background()); n != 1 || err != nil {
		t.Errorf("VerifyAudit = %d, %v; want 1", n, err)
	}
}

// TestConcurrentRevokes: two handles (two servers) revoke the two accesses
// of one key at once. Writes take turns, so one revoke sees the other's
// and refuses to remove the last access.
func TestConcurrentRevokes(t *testing.T) { forBackends(t, testConcurrentRevokes) }

func testConcurrentRevokes(t *testing.T, b backend) {
	ctx := context.Background()
	s1, loc := b.newStore(t)
	s2 := openStore(t, loc)
	for round := range 10 {
		key := fmt.Sprintf("k%d", round)
		if _, err := s1.AddKey(ctx, testKey(key)); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"u1", "u2"} {
			if round == 0 {
				if _, err := s1.AddUser(ctx, User{Name: u}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s1.Grant(ctx, key, u, []byte{1}, false); err != nil {
				t.Fatal(err)
			}
		}
		errs := make(chan error, 2)
		var wg sync.WaitGroup
		wg.Go(func() { errs <- s1.Revoke(ctx, key, "u1") })
		wg.Go(func() { errs <- s2.Revoke(ctx, key, "u2") })
		wg.Wait()
		close(errs)
		var ok, last int
		for err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrLastAccess):
				last++
			default:
				t.Fatal(err)
			}
		}
		if ok != 1 || last != 1 {
			t.Fatalf("round %d: %d revokes succeeded, %d refused; want 1 and 1", round, ok, last)
		}
		if list, err := s2.ListAccesses(ctx, key); err != nil || len(list) != 1 {
			t.Fatalf("round %d: accesses left = %v, %v", round, list, err)
		}
	}
}

// TestWriteLockTimeout: a session that holds the shared write lock (a
// stalled server, or any role that can connect) delays writers for at most
// LockTimeout; they fail cleanly, and succeed once the lock is free.
func TestWriteLockTimeout(t *testing.T) {
	pg := backend{"postgres", dialectPostgres}
	loc := pg.newLocation(t)
	saved := LockTimeout
	LockTimeout = 2 * time.Second
	t.Cleanup(func() { LockTimeout = saved })
	s := openStore(t, loc)
	ctx := context.Background()

	raw := pg.rawDB(t, loc)
	tx, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`SELECT pg_advisory_xact_lock($1)`, writeLockKey); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.AddUser(ctx, User{Name: "waits"})
	if err == nil || !strings.Contains(err.Error(), "lock timeout") {
		t.Fatalf("AddUser while the write lock is held: %v, want a lock timeout", err)
	}
	if d := time.Since(start); d < LockTimeout {
		t.Errorf("gave up after %v, before LockTimeout", d)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, User{Name: "waits"}); err != nil {
		t.Fatalf("AddUser once the lock is free: %v", err)
	}
	if _, err := s.GetUser(ctx, "waits"); err != nil {
		t.Fatal(err)
	}
}
