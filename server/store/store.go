// Package store is signet's persistent state: users, signing keys, the key
// accesses that tie the two together, named X.509 certificates per key, and a
// hash-chained, append-only audit log.
//
// The data model mirrors Sigul's server database (users, keys,
// key_accesses) so that Sigul's administrative operations can be served
// directly from it. Everything lives in one SQLite file opened in WAL mode,
// or in one PostgreSQL database shared by several servers; several [Store]
// handles, in one process or several, may share either. The two go
// through one database/sql code path; what differs is in dialect.go and in
// the per-dialect migrations of schema.go.
//
// Secrets never pass through this package in the clear: a key access holds
// the token PIN wrapped under the user's passphrase, which is an opaque blob
// here, and admin passwords are stored as Argon2id hashes (see
// [HashPassword]).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// BusyTimeout is how long a connection waits for a lock held by another
// connection (possibly in another process) before giving up with
// SQLITE_BUSY.
const BusyTimeout = 10 * time.Second

// maxNameLen bounds user, key and certificate names.
const maxNameLen = 255

// Sentinel errors. Errors returned by [Store] methods wrap one of these when
// the condition applies; test with [errors.Is].
var (
	// ErrNotFound reports that a named user, key, key access or certificate
	// does not exist. The concrete error is a *[NotFoundError].
	ErrNotFound = errors.New("not found")
	// ErrExists reports that an object with the same name (or the same key
	// access) already exists. The concrete error is a *[ExistsError].
	ErrExists = errors.New("already exists")
	// ErrInUse reports that a user cannot be deleted because it still has
	// key accesses.
	ErrInUse = errors.New("in use")
	// ErrLastAccess reports an attempt to revoke the only remaining access
	// to a key, which Sigul refuses (delete the key instead).
	ErrLastAccess = errors.New("last access to key")
	// ErrInvalid reports an argument that cannot be stored (empty or
	// malformed name, empty wrapped PIN, ...).
	ErrInvalid = errors.New("invalid argument")
	// ErrSchemaTooNew reports a database written by a newer version of
	// signet than this one.
	ErrSchemaTooNew = errors.New("database schema is newer than this program supports")
	// ErrAuditChain reports a broken audit hash chain. The concrete error
	// is a *[AuditChainError].
	ErrAuditChain = errors.New("audit chain broken")
	// ErrMalformedHash reports a password hash string that is not a
	// well-formed Argon2id PHC string with sane parameters.
	ErrMalformedHash = errors.New("malformed password hash")
)

// Kind names the kind of object an error is about.
type Kind string

// Object kinds used in [NotFoundError] and [ExistsError].
const (
	KindUser        Kind = "user"
	KindKey         Kind = "key"
	KindAccess      Kind = "key access"
	KindCertificate Kind = "certificate"
)

// NotFoundError reports which object was not found. It matches
// [ErrNotFound] under [errors.Is]; use [errors.As] and Kind to tell a missing
// user from a missing key or key access (Sigul's USER_NOT_FOUND,
// KEY_NOT_FOUND, KEY_USER_NOT_FOUND).
type NotFoundError struct {
	// Kind is the kind of the missing object.
	Kind Kind
	// Name is the user or key name, the user name for KindAccess, or the
	// certificate name for KindCertificate.
	Name string
	// Key is the key name for KindAccess and KindCertificate, else empty.
	Key string
}

// Error implements error.
func (e *NotFoundError) Error() string {
	return "store: " + describe(e.Kind, e.Name, e.Key) + " not found"
}

// Unwrap returns [ErrNotFound].
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// ExistsError reports which object already exists. It matches [ErrExists]
// under [errors.Is]. Fields are as in [NotFoundError].
type ExistsError struct {
	// Kind is the kind of the conflicting object.
	Kind Kind
	// Name is the conflicting name (see [NotFoundError.Name]).
	Name string
	// Key is the key name for KindAccess and KindCertificate, else empty.
	Key string
}

// Error implements error.
func (e *ExistsError) Error() string {
	return "store: " + describe(e.Kind, e.Name, e.Key) + " already exists"
}

// Unwrap returns [ErrExists].
func (e *ExistsError) Unwrap() error { return ErrExists }

func describe(k Kind, name, key string) string {
	switch k {
	case KindAccess:
		return fmt.Sprintf("key access of user %q to key %q", name, key)
	case KindCertificate:
		return fmt.Sprintf("certificate %q of key %q", name, key)
	default:
		return fmt.Sprintf("%s %q", k, name)
	}
}

func notFound(k Kind, name, key string) error { return &NotFoundError{Kind: k, Name: name, Key: key} }
func exists(k Kind, name, key string) error   { return &ExistsError{Kind: k, Name: name, Key: key} }

func invalid(format string, args ...any) error {
	return fmt.Errorf("store: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// checkName validates a user, key or certificate name. Names end up in
// NUL-separated Sigul replies and in logs, so control characters are
// refused.
func checkName(what, name string) error {
	switch {
	case name == "":
		return invalid("empty %s name", what)
	case len(name) > maxNameLen:
		return invalid("%s name longer than %d bytes", what, maxNameLen)
	case !utf8.ValidString(name):
		return invalid("%s name is not valid UTF-8", what)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return invalid("%s name %q contains control characters", what, name)
	}
	return nil
}

// Store is an open signet database. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect dialect
	// path is the SQLite file's absolute path, or the PostgreSQL URL
	// without its password.
	path string
	// server names this process in the audit records it appends.
	server string
	// writeSem serializes this handle's write transactions so that
	// in-process writers queue here instead of spinning in SQLite's busy
	// handler or holding PostgreSQL connections while they wait for the
	// write lock. Writers in other processes (or other handles) are
	// serialized by SQLite's locking or PostgreSQL's advisory lock.
	writeSem chan struct{}
	// stmts keeps SQLite's statements prepared (nil for PostgreSQL).
	stmts *stmts
}

// q runs single queries on the database.
func (s *Store) q() dbq { return dbq{db: s.db, d: s.dialect, c: s.stmts} }

// queryer is satisfied by dbq and *txn.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Options are the settings of [OpenWith].
type Options struct {
	// ServerName names this server in the audit records it appends; ""
	// means the host name.
	ServerName string
	// Password is the PostgreSQL password, when the server asks for one
	// and the URL's passfile (or ~/.pgpass) does not give it. A password
	// inside the URL is refused: URLs end up on command lines and in
	// logs. Ignored for SQLite.
	Password []byte
	// MaxConns caps the PostgreSQL connections this handle opens; 0
	// means 16. Ignored for SQLite.
	MaxConns int
}

// IsPostgres reports whether location names a PostgreSQL database
// (a postgres:// or postgresql:// URL) rather than a SQLite file.
func IsPostgres(location string) bool {
	l := strings.ToLower(location)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// Open is [OpenWith] with default options.
func Open(ctx context.Context, location string) (*Store, error) {
	return OpenWith(ctx, location, Options{})
}

// OpenWith opens the database at location: a postgres:// URL selects
// PostgreSQL (see [openPostgres]), anything else is a SQLite file path.
//
// A SQLite file is created (mode 0600) if it does not exist; the parent
// directory must exist. An existing file keeps its mode. Every connection
// runs with foreign keys enforced, WAL journaling, synchronous=FULL,
// secure_delete and a busy timeout of [BusyTimeout]; write transactions
// are BEGIN IMMEDIATE.
//
// OpenWith applies pending schema migrations, each in its own write
// transaction, so that several servers starting together apply each one
// once (SQLite's write lock; PostgreSQL's advisory write lock). It
// refuses, with an error matching [ErrSchemaTooNew], a database whose
// schema version is newer than this code knows.
func OpenWith(ctx context.Context, location string, opts Options) (*Store, error) {
	server := opts.ServerName
	if server == "" {
		server, _ = os.Hostname()
		if server == "" {
			server = "unknown"
		}
	}
	if err := checkName("server", server); err != nil {
		return nil, err
	}
	var s *Store
	var err error
	if IsPostgres(location) {
		s, err = openPostgres(ctx, location, opts)
	} else {
		s, err = openSQLite(ctx, location)
	}
	if err != nil {
		return nil, err
	}
	s.server = server
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, invalid("empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: database path %q: %w", path, err)
	}
	dir := filepath.Dir(abs)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("store: directory of database %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("store: directory of database %s: %s is not a directory", abs, dir)
	}
	if err := createFile(abs); err != nil {
		return nil, err
	}

	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	s := &Store{db: db, dialect: dialectSQLite, path: abs, writeSem: make(chan struct{}, 1),
		stmts: &stmts{db: db, m: map[string]*sql.Stmt{}}}
	// Turning a fresh file to WAL needs an exclusive lock, and SQLite
	// answers SQLITE_BUSY at once, without the busy handler, when another
	// process is doing the same: try again for up to BusyTimeout.
	deadline := time.Now().Add(BusyTimeout)
	for {
		err := s.checkConn(ctx)
		if err == nil {
			break
		}
		if !isBusy(err) || time.Now().After(deadline) || ctx.Err() != nil {
			db.Close()
			return nil, err
		}
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
	}
	return s, nil
}

// createFile creates path with mode 0600 unless it exists, in which case it
// must be a regular file. SQLite gives the -wal and -shm files the mode of
// the database file.
func createFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("store: create %s: %w", path, err)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: create database: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("store: database: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("store: database %s is not a regular file", path)
	}
	return nil
}

// dsn builds a modernc.org/sqlite data source name for the absolute path.
// The path is URI-escaped so that '?', '#' and '%' in it are not taken for
// URI syntax.
func dsn(abs string) string {
	// The pragmas run in this order on every new connection: the busy
	// timeout first, so that switching a fresh file to WAL while another
	// process does the same waits instead of failing with SQLITE_BUSY.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "secure_delete(1)")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
}

// checkConn makes sure a connection can be established and that the
// pragmas the store relies on took effect.
func (s *Store) checkConn(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	defer conn.Close()
	var fk int
	if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	if fk != 1 {
		return fmt.Errorf("store: open %s: foreign keys could not be enabled", s.path)
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("store: open %s: journal mode is %q, not WAL", s.path, mode)
	}
	return nil
}

// Close closes the database. It must not be called while other methods are
// running.
func (s *Store) Close() error {
	s.stmts.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// Path returns the absolute path of the SQLite file, or the PostgreSQL
// URL without any password: fit for logs and messages.
func (s *Store) Path() string { return s.path }

// IsPostgres reports whether the store is a PostgreSQL database.
func (s *Store) IsPostgres() bool { return s.dialect == dialectPostgres }

// ServerName returns the name this handle writes into audit records.
func (s *Store) ServerName() string { return s.server }

// writeTx runs fn in a write transaction (see [dialect.beginWrite]) and commits it if fn
// returns nil, with the audit record WithAudit put on ctx if it has not
// been written yet. Errors from fn are returned unchanged.
func (s *Store) writeTx(ctx context.Context, fn func(tx *txn) error) error {
	p, _ := ctx.Value(pendingAuditKey{}).(*pendingAudit)
	if p == nil {
		return s.writeTxOnly(ctx, fn)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.written {
		return s.writeTxOnly(ctx, fn)
	}
	var rec []AuditRecord
	err := s.writeTxOnly(ctx, func(tx *txn) error {
		if err := fn(tx); err != nil {
			return err
		}
		r, at, err := s.prepareAudit(p.build())
		if err != nil {
			return err
		}
		rec = []AuditRecord{r}
		return appendAudits(ctx, tx, rec, []string{at})
	})
	if err == nil {
		p.written, p.rec = true, rec[0]
	}
	return err
}

// writeTxOnly is writeTx without a pending audit record.
func (s *Store) writeTxOnly(ctx context.Context, fn func(tx *txn) error) error {
	select {
	case s.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writeSem }()

	sqlTx, err := s.dialect.beginWrite(ctx, s.db)
	if err != nil {
		return fmt.Errorf("store: begin transaction: %w", err)
	}
	tx := &txn{tx: sqlTx, d: s.dialect, c: s.stmts}
	if err := fn(tx); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// dbErr wraps an unexpected database error with the operation it came from.
func dbErr(op string, err error) error {
	return fmt.Errorf("store: %s: %w", op, err)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// nullBytes maps an empty slice to SQL NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// isBusy reports SQLITE_BUSY (5) from the driver.
func isBusy(err error) bool {
	var c interface{ Code() int }
	return errors.As(err, &c) && c.Code()&0xff == 5
}
