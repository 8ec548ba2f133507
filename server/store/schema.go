package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one step of the schema history. Its statements run, in
// order, in a single transaction together with the schema_version insert
// that records it.
//
// Migrations are append-only: never edit one that has shipped. A migration
// that needs foreign keys off (table rebuilds) cannot get that from inside a
// transaction; it must use the "create new table, copy, drop, rename"
// procedure with PRAGMA foreign_key_check before commit.
type migration struct {
	desc  string
	stmts []string
}

// migrations is the ordered schema history; migrations[i] brings the schema
// from version i to version i+1. It is a variable only so tests can extend
// it.
var migrations = []migration{
	{
		desc: "initial schema",
		stmts: []string{
			`CREATE TABLE users (
				id            INTEGER PRIMARY KEY,
				name          TEXT    NOT NULL UNIQUE CHECK (name <> ''),
				admin         INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
				password_hash TEXT
			) STRICT`,
			`CREATE TABLE keys (
				id              INTEGER PRIMARY KEY,
				name            TEXT    NOT NULL UNIQUE CHECK (name <> ''),
				key_type        TEXT    NOT NULL CHECK (key_type <> ''),
				token           TEXT    NOT NULL CHECK (token <> ''),
				object_id       BLOB    NOT NULL CHECK (length(object_id) > 0),
				public_key      BLOB    NOT NULL CHECK (length(public_key) > 0),
				pgp_created     INTEGER,
				pgp_certificate BLOB,
				fingerprint     TEXT,
				created_at      TEXT    NOT NULL
			) STRICT`,
			`CREATE TABLE key_accesses (
				id          INTEGER PRIMARY KEY,
				key_id      INTEGER NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
				user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
				wrapped_pin BLOB    NOT NULL CHECK (length(wrapped_pin) > 0),
				key_admin   INTEGER NOT NULL DEFAULT 0 CHECK (key_admin IN (0, 1)),
				UNIQUE (key_id, user_id)
			) STRICT`,
			`CREATE INDEX key_accesses_user_id ON key_accesses(user_id)`,
			`CREATE TABLE certificates (
				id     INTEGER PRIMARY KEY,
				key_id INTEGER NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
				name   TEXT    NOT NULL CHECK (name <> ''),
				der    BLOB    NOT NULL CHECK (length(der) > 0),
				UNIQUE (key_id, name)
			) STRICT`,
			`CREATE TABLE audit (
				id        INTEGER PRIMARY KEY,
				at        TEXT NOT NULL,
				actor     TEXT NOT NULL,
				operation TEXT NOT NULL,
				key_name  TEXT NOT NULL,
				detail    TEXT NOT NULL,
				digest    TEXT NOT NULL,
				result    TEXT NOT NULL,
				prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
				hash      BLOB NOT NULL CHECK (length(hash) = 32)
			) STRICT`,
			`CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
			BEGIN
				SELECT RAISE(ABORT, 'audit records are append-only: UPDATE refused');
			END`,
			`CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
			BEGIN
				SELECT RAISE(ABORT, 'audit records are append-only: DELETE refused');
			END`,
			// Defence in depth for AppendAudit: an insert must extend
			// the chain at its head. This also stops INSERT OR REPLACE
			// from overwriting a row (REPLACE's implicit delete does not
			// fire delete triggers).
			`CREATE TRIGGER audit_insert_extends_chain BEFORE INSERT ON audit
			WHEN NEW.id IS NOT (SELECT COALESCE(MAX(id), 0) + 1 FROM audit)
			  OR NEW.prev_hash IS NOT COALESCE(
				(SELECT hash FROM audit ORDER BY id DESC LIMIT 1), zeroblob(32))
			BEGIN
				SELECT RAISE(ABORT, 'audit insert must extend the chain: id must be last id + 1 and prev_hash the last hash');
			END`,
		},
	},
	{
		desc: "keys.backup: generated for wrapped backup",
		stmts: []string{
			`ALTER TABLE keys ADD COLUMN backup INTEGER NOT NULL DEFAULT 0 CHECK (backup IN (0, 1))`,
		},
	},
}

// SchemaVersion is the schema version this code creates and understands.
func SchemaVersion() int { return len(migrations) }

// DatabaseSchemaVersion returns the schema version recorded in the open
// database.
func (s *Store) DatabaseSchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, dbErr("read schema version", err)
	}
	return v, nil
}

// migrate applies pending migrations, one transaction each. The version is
// re-read inside every transaction, so concurrent Opens of a fresh file (in
// several processes) apply each migration exactly once.
func (s *Store) migrate(ctx context.Context) error {
	for {
		done := false
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
				version    INTEGER PRIMARY KEY,
				description TEXT NOT NULL,
				applied_at TEXT NOT NULL
			) STRICT`); err != nil {
				return dbErr("create schema_version", err)
			}
			var cur int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&cur); err != nil {
				return dbErr("read schema version", err)
			}
			switch {
			case cur > len(migrations):
				return fmt.Errorf("store: %s has schema version %d but this program knows only up to %d (upgrade signet): %w",
					s.path, cur, len(migrations), ErrSchemaTooNew)
			case cur == len(migrations):
				done = true
				return nil
			}
			m := migrations[cur]
			for i, stmt := range m.stmts {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("store: migration to schema version %d (%s), statement %d: %w", cur+1, m.desc, i+1, err)
				}
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)`,
				cur+1, m.desc, formatTime(time.Now())); err != nil {
				return dbErr("record schema version", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}
