package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// cheapParams keeps password hashing fast in tests that do not test the
// default cost.
var cheapParams = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

func openStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signet.db")
	return openStore(t, path), path
}

// rawDB opens the file with a plain database/sql connection, bypassing the
// store (as an attacker with file access would).
func rawDB(t *testing.T, path string) *rawConn {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return &rawConn{DB: db, d: dialectSQLite}
}

func rawExec(t *testing.T, db *rawConn, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// versionDump returns the recorded schema versions.
func versionDump(t *testing.T, db *rawConn) string {
	t.Helper()
	var b strings.Builder
	rows, err := db.Query(`SELECT version, description, applied_at FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var d, at string
		if err := rows.Scan(&v, &d, &at); err != nil {
			t.Fatal(err)
		}
		b.WriteString(strings.Join([]string{"version", d, at}, " ") + "\n")
	}
	return b.String()
}

func TestOpenCreatesSchema(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)

	if v, err := s.databaseSchemaVersion(ctx); err != nil || v != schemaVersion() || v < 1 {
		t.Fatalf("DatabaseSchemaVersion = %d, %v; want %d", v, err, schemaVersion())
	}
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s mode = %o, want 600", filepath.Base(f), m)
		}
	}
	var fk int
	var mode string
	if err := s.db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v", fk, err)
	}
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	for pragma, want := range map[string]int{"secure_delete": 1, "synchronous": 2, "busy_timeout": int(BusyTimeout.Milliseconds())} {
		var got int
		if err := s.db.QueryRow(`PRAGMA ` + pragma).Scan(&got); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", pragma, got, err, want)
		}
	}
	for _, tbl := range []string{"schema_version", "users", "keys", "key_accesses", "certificates", "audit"} {
		var n int
		if err := s.db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, tbl).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: count %d, %v", tbl, n, err)
		}
	}
}

func TestReopenIsNoOp(t *testing.T) { forBackends(t, testReopenIsNoOp) }

func testReopenIsNoOp(t *testing.T, b backend) {
	ctx := context.Background()
	path := b.newLocation(t)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := b.schemaDump(t, b.rawDB(t, path))

	s = b.openStore(t, path)
	after := b.schemaDump(t, b.rawDB(t, path))
	if before != after {
		t.Errorf("reopen changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := s.GetUser(ctx, "alice"); err != nil {
		t.Errorf("data lost on reopen: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) { forBackends(t, testOpenRefusesNewerSchema) }

func testOpenRefusesNewerSchema(t *testing.T, b backend) {
	ctx := context.Background()
	_, path := b.newStore(t)
	rawExec(t, b.rawDB(t, path), `INSERT INTO schema_version (version, description, applied_at) VALUES (?, 'from the future', '')`,
		schemaVersion()+1)
	s, err := Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded on a newer schema")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("error %v does not match ErrSchemaTooNew", err)
	}
	if want := fmt.Sprintf("schema version %d", schemaVersion()+1); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %q", err, want)
	}
}

func TestMigrationFailureRollsBack(t *testing.T) { forBackends(t, testMigrationFailureRollsBack) }

func testMigrationFailureRollsBack(t *testing.T, b backend) {
	ctx := context.Background()
	_, path := b.newStore(t)

	saved := migrations
	t.Cleanup(func() { migrations = saved })
	migrations = append(append([]migration(nil), saved...), migration{
		desc:     "broken",
		stmts:    []string{`CREATE TABLE half_done (x INTEGER)`, `THIS IS NOT SQL`},
		postgres: []string{`CREATE TABLE half_done (x INTEGER)`, `THIS IS NOT SQL`},
	})
	s, err := Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with a broken migration")
	}
	if !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "statement 2") {
		t.Errorf("error %q does not name the failing migration step", err)
	}
	db := b.rawDB(t, path)
	var v int
	if err := db.QueryRow(`SELECT max(version) FROM schema_version`).Scan(&v); err != nil || v != len(saved) {
		t.Errorf("version after failed migration = %d, %v; want %d", v, err, len(saved))
	}
	if b.tableExists(t, db, "half_done") {
		t.Errorf("partial migration left table behind")
	}

	// With a fixed migration, the upgrade goes through.
	migrations[len(migrations)-1].stmts = []string{`CREATE TABLE half_done (x INTEGER)`}
	migrations[len(migrations)-1].postgres = []string{`CREATE TABLE half_done (x INTEGER)`}
	s = b.openStore(t, path)
	if v, err := s.databaseSchemaVersion(ctx); err != nil || v != len(saved)+1 {
		t.Errorf("version after upgrade = %d, %v", v, err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"not a database", junk, "not a database"},
		{"empty path", "", "empty database path"},
		{"missing parent", filepath.Join(dir, "nope", "signet.db"), "directory of database"},
		{"path is a directory", dir, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Errorf("Open created the missing parent directory")
	}
}

func TestOpenUnusualPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "we ird?#%20dir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "db?x=1#frag")
	s := openStore(t, path)
	if _, err := s.AddUser(context.Background(), User{Name: "u"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the literal path: %v", err)
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
}

func TestConcurrentOpenOfFreshFile(t *testing.T) { forBackends(t, testConcurrentOpenOfFreshFile) }

func testConcurrentOpenOfFreshFile(t *testing.T, b backend) {
	path := b.newLocation(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			s, err := Open(context.Background(), path)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var n int
	if err := b.rawDB(t, path).QueryRow(`SELECT count(*) FROM schema_version`).Scan(&n); err != nil || n != schemaVersion() {
		t.Errorf("schema_version rows = %d, %v; want %d", n, err, schemaVersion())
	}
}
