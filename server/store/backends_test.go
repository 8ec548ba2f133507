package store

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	postgrestest "github.com/signet-project/signet/postgres-test"
)

// TestMain stops the PostgreSQL cluster the tests shared, if one started.
func TestMain(m *testing.M) {
	code := m.Run()
	postgrestest.StopShared()
	os.Exit(code)
}

// backend is one kind of database the store's tests run against.
type backend struct {
	name string
	d    dialect
}

var backends = []backend{{"sqlite", dialectSQLite}, {"postgres", dialectPostgres}}

// forBackends runs fn as a subtest per backend. PostgreSQL subtests skip
// under -short (the cluster is a process); without PostgreSQL's programs
// they skip, or fail under CI=true.
func forBackends(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if b.d == dialectPostgres {
				postgrestest.Shared(t)
			}
			fn(t, b)
		})
	}
}

// newLocation returns where a new, empty database is: a file path in a
// temporary directory or the URL of a fresh PostgreSQL database.
func (b backend) newLocation(t *testing.T) string {
	t.Helper()
	if b.d == dialectPostgres {
		c := postgrestest.Shared(t)
		return c.URL(c.CreateDatabase(t))
	}
	return filepath.Join(t.TempDir(), "signet.db")
}

func (b backend) newStore(t *testing.T) (*Store, string) {
	t.Helper()
	loc := b.newLocation(t)
	return openStore(t, loc), loc
}

func (b backend) openStore(t *testing.T, loc string) *Store { t.Helper(); return openStore(t, loc) }

// rawConn is a plain database/sql connection that bypasses the store (as
// an attacker with database access would), with '?' placeholders.
type rawConn struct {
	*sql.DB
	d dialect
}

func (r *rawConn) Exec(q string, args ...any) (sql.Result, error) {
	return r.DB.Exec(r.d.rebind(q), args...)
}

func (r *rawConn) QueryRow(q string, args ...any) *sql.Row {
	return r.DB.QueryRow(r.d.rebind(q), args...)
}

func (r *rawConn) Query(q string, args ...any) (*sql.Rows, error) {
	return r.DB.Query(r.d.rebind(q), args...)
}

func (b backend) rawDB(t *testing.T, loc string) *rawConn {
	t.Helper()
	if b.d != dialectPostgres {
		return rawDB(t, loc)
	}
	db, err := sql.Open("pgx", loc)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return &rawConn{DB: db, d: dialectPostgres}
}

// zero32 is an SQL expression for 32 zero bytes.
func (b backend) zero32() string {
	if b.d == dialectPostgres {
		return `decode(repeat('00', 32), 'hex')`
	}
	return `zeroblob(32)`
}

// unprotectAudit drops the triggers that keep the audit table append-only,
// as someone with full database access can.
func (b backend) unprotectAudit(t *testing.T, db *rawConn) {
	t.Helper()
	if b.d == dialectPostgres {
		rawExec(t, db, `DROP TRIGGER audit_no_update ON audit`)
		return
	}
	rawExec(t, db, `DROP TRIGGER audit_no_update`)
	rawExec(t, db, `DROP TRIGGER audit_no_delete`)
}

// tableExists reports whether the database has a table of that name.
func (b backend) tableExists(t *testing.T, db *rawConn, name string) bool {
	t.Helper()
	q := `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`
	if b.d == dialectPostgres {
		q = `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`
	}
	var n int
	if err := db.QueryRow(q, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// schemaDump returns the schema objects and recorded versions, to compare
// before and after a reopen.
func (b backend) schemaDump(t *testing.T, db *rawConn) string {
	t.Helper()
	q := `SELECT type, name, COALESCE(sql, '') FROM sqlite_schema ORDER BY type, name`
	if b.d == dialectPostgres {
		q = `SELECT table_name, column_name, data_type || ' ' || COALESCE(column_default, '') FROM information_schema.columns
			WHERE table_schema = current_schema() ORDER BY table_name, column_name`
	}
	var out strings.Builder
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, c, d string
		if err := rows.Scan(&a, &c, &d); err != nil {
			t.Fatal(err)
		}
		out.WriteString(a + " " + c + " " + d + "\n")
	}
	rows.Close()
	if b.d == dialectPostgres {
		rows, err := db.Query(`SELECT event_object_table, trigger_name, action_timing || ' ' || event_manipulation
			FROM information_schema.triggers ORDER BY 1, 2, 3`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var a, c, d string
			if err := rows.Scan(&a, &c, &d); err != nil {
				t.Fatal(err)
			}
			out.WriteString("trigger " + a + " " + c + " " + d + "\n")
		}
		rows.Close()
	}
	return out.String() + versionDump(t, db)
}
