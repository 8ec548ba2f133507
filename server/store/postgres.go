package store

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// LockTimeout bounds, on PostgreSQL, how long a write waits for the shared
// write lock and how long a transaction may sit idle holding it. It is a
// variable for tests; set it before Open.
var LockTimeout = time.Minute

// passwordParams are connection-string settings that carry a secret.
var passwordParams = []string{"password", "sslpassword"}

// RedactURL returns a PostgreSQL URL fit for logs: without any password
// (in the user part or in a password/sslpassword parameter). A URL that
// does not parse is replaced by a placeholder, since it may still hold
// a password.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	for _, p := range passwordParams {
		if q.Has(p) {
			q.Set(p, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// URLHasPassword reports whether a PostgreSQL URL carries a password (in
// the user part or a password/sslpassword parameter). signet refuses those:
// a URL is given on command lines and in configuration files that are not
// secret; the password comes from a private file or a credential.
func URLHasPassword(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return strings.Contains(raw, "password") || strings.Contains(raw, "@")
	}
	if u.User != nil {
		if _, set := u.User.Password(); set {
			return true
		}
	}
	q := u.Query()
	for _, p := range passwordParams {
		if q.Has(p) {
			return true
		}
	}
	return false
}

// openPostgres connects to the PostgreSQL database named by the URL. The
// URL may not carry a password (see [URLHasPassword]); opts.Password, the
// URL's passfile parameter, PGPASSFILE or ~/.pgpass give it. Any other
// libpq setting (host=/socket directory, sslmode, sslrootcert, sslcert and
// sslkey for certificate login, ...) is honoured as pgx reads it.
func openPostgres(ctx context.Context, raw string, opts Options) (*Store, error) {
	if URLHasPassword(raw) {
		return nil, invalid("database URL %s holds a password: give it in a private file (database_password_file), a systemd credential or a passfile instead", RedactURL(raw))
	}
	loc := RedactURL(raw)
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		// pgx's message may quote the URL; it holds no password (checked
		// above) but say only which URL failed and why in our words.
		return nil, fmt.Errorf("store: database URL %s cannot be parsed: %w", loc, ErrInvalid)
	}
	if len(opts.Password) > 0 {
		cfg.Password = string(opts.Password)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	// Every session: UTC; no wait for a lock (the shared write lock
	// included) longer than LockTimeout; and a transaction left idle by
	// a stalled server is ended, releasing the write lock, after
	// LockTimeout too.
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	ms := strconv.FormatInt(LockTimeout.Milliseconds(), 10)
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.RuntimeParams["application_name"] = "signet-server"
	cfg.RuntimeParams["lock_timeout"] = ms
	cfg.RuntimeParams["idle_in_transaction_session_timeout"] = ms
	db := stdlib.OpenDB(*cfg)
	n := opts.MaxConns
	if n <= 0 {
		n = 16
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(min(n, 4))
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db, dialect: dialectPostgres, path: loc, writeSem: make(chan struct{}, 1)}
	if err := s.checkPostgres(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// checkPostgres connects once and checks the server is recent enough for
// the schema (EXECUTE FUNCTION in triggers: PostgreSQL 11).
func (s *Store) checkPostgres(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&v); err != nil {
		return fmt.Errorf("store: connect to %s: %w", s.path, err)
	}
	if v < 110000 {
		return fmt.Errorf("store: %s runs PostgreSQL %d; signet needs 11 or newer", s.path, v)
	}
	return nil
}
