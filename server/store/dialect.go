package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is the SQL database behind a Store. Every difference between
// SQLite and PostgreSQL that the queries meet is handled in this file:
// placeholders (queries are written with '?'), unique-violation detection,
// transaction start (locking and isolation), and resetting row-id
// sequences after a copy. The schema, which differs in types (BLOB/BYTEA,
// INTEGER PRIMARY KEY/identity) and trigger syntax, is in schema.go, one
// migration list per dialect with the same version numbers.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// writeLockKey is the PostgreSQL advisory lock every write transaction
// takes first ("signet" and 1 in its bytes). It makes writes from all
// servers sharing a database take turns, as SQLite's single writer does:
// the audit chain's head is read and extended under it, schema migrations
// run under it, and read-then-write checks (the last access to a key) see
// every committed write.
const writeLockKey int64 = 0x7369676e65740001

// rebind turns the '?' placeholders of a query into PostgreSQL's $1, $2,
// ... Queries hold no '?' inside string literals; rebind skips quoted text
// anyway.
func (d dialect) rebind(q string) string {
	if d != dialectPostgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY constraint
// violation, from either driver.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505" // unique_violation
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// beginWrite starts a write transaction. SQLite's is BEGIN IMMEDIATE
// (from the DSN's _txlock): it holds the database's write lock from the
// start. PostgreSQL's is READ COMMITTED and first takes writeLockKey, so
// each statement after the lock sees everything committed before it.
// (REPEATABLE READ would keep a snapshot from before the wait and fork the
// audit chain; SERIALIZABLE would need retries.)
func (d dialect) beginWrite(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	if d != dialectPostgres {
		return db.BeginTx(ctx, nil)
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLockKey); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// beginRead starts a read-only transaction that sees one snapshot.
func (d dialect) beginRead(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	if d != dialectPostgres {
		return db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	}
	return db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
}

// resetSequences makes the row-id generators of the copied tables continue
// after the largest id (PostgreSQL identity columns do not follow rows
// inserted with explicit ids; SQLite's INTEGER PRIMARY KEY does).
func (d dialect) resetSequences(ctx context.Context, tx *txn) error {
	if d != dialectPostgres {
		return nil
	}
	for _, t := range []string{"users", "keys", "key_accesses", "certificates"} {
		if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'),
			(SELECT COALESCE(MAX(id), 0) + 1 FROM `+t+`), false)`); err != nil {
			return dbErr("reset id sequence of "+t, err)
		}
	}
	return nil
}

// stmts keeps the store's SQLite statements prepared, one per query text,
// for the life of the Store (database/sql prepares each again on every
// connection it runs on). modernc's driver otherwise parses and plans a
// statement each time it runs: on the signing path (access row, key row,
// audit head and insert) that cost more than running the statements. Only
// data statements are kept; the query texts are the package's constants,
// and at most maxStmts of them. PostgreSQL's driver (pgx) has its own
// statement cache, so a PostgreSQL Store has none here (nil).
type stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

const maxStmts = 256

// get returns the prepared statement for q, or nil: the caller then runs
// q unprepared (and meets any error there).
func (c *stmts) get(ctx context.Context, q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	st, ok := c.m[q]
	c.mu.Unlock()
	if ok || !dataStatement(q) {
		return st
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[q]; ok {
		st.Close()
		return old
	}
	if len(c.m) >= maxStmts {
		st.Close()
		return nil
	}
	c.m[q] = st
	return st
}

// close closes the prepared statements.
func (c *stmts) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}

// dataStatement reports whether q reads or changes rows (rather than the
// schema or the connection).
func dataStatement(q string) bool {
	q = strings.TrimSpace(q)
	verb, _, _ := strings.Cut(q, " ")
	switch strings.ToUpper(verb) {
	case "SELECT", "INSERT", "UPDATE", "DELETE":
		return true
	}
	return false
}

// txn is a transaction whose queries are written with '?' placeholders.
type txn struct {
	tx *sql.Tx
	d  dialect
	c  *stmts
}

func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	q = t.d.rebind(q)
	if st := t.c.get(ctx, q); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = t.d.rebind(q)
	if st := t.c.get(ctx, q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	q = t.d.rebind(q)
	if st := t.c.get(ctx, q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

// insertID runs an INSERT and returns the id of the new row (RETURNING id
// works on both databases; PostgreSQL's driver has no LastInsertId).
func (t *txn) insertID(ctx context.Context, q string, args ...any) (int64, error) {
	var id int64
	err := t.QueryRowContext(ctx, q+" RETURNING id", args...).Scan(&id)
	return id, err
}

// dbq runs single queries outside a transaction, with '?' placeholders.
type dbq struct {
	db *sql.DB
	d  dialect
	c  *stmts
}

func (q dbq) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = q.d.rebind(query)
	if st := q.c.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.db.QueryContext(ctx, query, args...)
}

func (q dbq) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	query = q.d.rebind(query)
	if st := q.c.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.db.QueryRowContext(ctx, query, args...)
}
