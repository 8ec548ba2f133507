package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// ErrNotEmpty reports a copy into a database that already holds data.
var ErrNotEmpty = errors.New("target database is not empty")

// copyTables are the tables Copy moves, parents before children, with the
// columns it copies (all of them, ids included).
var copyTables = []struct{ name, columns string }{
	{"users", userColumns},
	{"keys", keyColumns},
	{"key_accesses", `id, key_id, user_id, wrapped_pin, key_admin`},
	{"certificates", `id, key_id, name, der`},
	{"audit", auditColumns},
}

// CopyReport says what Copy moved: rows per table, and the audit chain's
// length and head as verified in the target.
type CopyReport struct {
	// Rows counts the rows copied per table.
	Rows map[string]int
	// AuditRecords is how many records verified in the target.
	AuditRecords int
	// Last is the target's last audit record.
	Last AuditRecord
}

// Copy copies every row of src into dst, which must be empty (else an
// error matching [ErrNotEmpty]): users, keys, key accesses, certificates
// and the audit log with their ids, so that the audit chain and the
// wrapped PINs (bound to user row ids) stay valid. It is how a deployment
// moves from SQLite to PostgreSQL (or back). Both stores are at the
// current schema version (Open migrated them).
//
// The copy is one transaction in dst: all or nothing. Afterwards Copy
// checks the result: the target's audit chain verifies and ends where the
// source's does, and every table's content digest equals the source's.
// src should not change meanwhile (stop the servers first); it is read in
// one snapshot.
func Copy(ctx context.Context, dst, src *Store) (CopyReport, error) {
	rep := CopyReport{Rows: map[string]int{}}
	err := dst.writeTxOnly(ctx, func(out *txn) error {
		for _, t := range copyTables {
			var n int
			if err := out.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name).Scan(&n); err != nil {
				return dbErr("count "+t.name, err)
			}
			if n > 0 {
				return fmt.Errorf("store: %s has %d rows in %s: %w", dst.path, n, t.name, ErrNotEmpty)
			}
		}
		return src.readTx(ctx, func(in *txn) error {
			for _, t := range copyTables {
				n, err := copyTable(ctx, out, in, t.name, t.columns)
				if err != nil {
					return err
				}
				rep.Rows[t.name] = n
			}
			return dst.dialect.resetSequences(ctx, out)
		})
	})
	if err != nil {
		return rep, err
	}
	if err := CompareContents(ctx, dst, src); err != nil {
		return rep, err
	}
	if rep.AuditRecords, err = dst.VerifyAudit(ctx); err != nil {
		return rep, fmt.Errorf("store: the copied audit chain does not verify: %w", err)
	}
	if rep.Last, err = dst.LastAudit(ctx); err != nil {
		return rep, err
	}
	srcLast, err := src.LastAudit(ctx)
	if err != nil {
		return rep, err
	}
	if rep.Last.ID != srcLast.ID || !bytes.Equal(rep.Last.Hash, srcLast.Hash) {
		return rep, fmt.Errorf("store: copied audit chain ends at %d:%x, the source's at %d:%x", rep.Last.ID, rep.Last.Hash, srcLast.ID, srcLast.Hash)
	}
	return rep, nil
}

// copyTable streams the rows of table from in to out, in id order.
func copyTable(ctx context.Context, out, in *txn, table, columns string) (int, error) {
	rows, err := in.QueryContext(ctx, `SELECT `+columns+` FROM `+table+` ORDER BY id`)
	if err != nil {
		return 0, dbErr("read "+table, err)
	}
	defer rows.Close()
	ncol := len(strings.Split(columns, ","))
	insert := `INSERT INTO ` + table + ` (` + columns + `) VALUES (?` + strings.Repeat(`, ?`, ncol-1) + `)`
	vals := make([]any, ncol)
	ptrs := make([]any, ncol)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, dbErr("read "+table, err)
		}
		if _, err := out.ExecContext(ctx, insert, vals...); err != nil {
			return n, dbErr(fmt.Sprintf("copy %s row %v", table, vals[0]), err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, dbErr("read "+table, err)
	}
	return n, nil
}

// CompareContents checks that a and b hold the same rows in every table
// (ids and values, compared as SQL values: integers, text, bytes, NULL),
// and names the first table that differs.
func CompareContents(ctx context.Context, a, b *Store) error {
	for _, t := range copyTables {
		da, na, err := a.tableDigest(ctx, t.name, t.columns)
		if err != nil {
			return err
		}
		db, nb, err := b.tableDigest(ctx, t.name, t.columns)
		if err != nil {
			return err
		}
		if na != nb || !bytes.Equal(da, db) {
			return fmt.Errorf("store: table %s differs: %d rows in %s, %d in %s", t.name, na, a.path, nb, b.path)
		}
	}
	return nil
}

// tableDigest hashes a table's rows in id order, each value with a type
// tag and a length.
func (s *Store) tableDigest(ctx context.Context, table, columns string) ([]byte, int, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT `+columns+` FROM `+table+` ORDER BY id`)
	if err != nil {
		return nil, 0, dbErr("read "+table, err)
	}
	defer rows.Close()
	ncol := len(strings.Split(columns, ","))
	vals := make([]any, ncol)
	ptrs := make([]any, ncol)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	h := sha256.New()
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, n, dbErr("read "+table, err)
		}
		for _, v := range vals {
			if err := digestValue(h, v); err != nil {
				return nil, n, fmt.Errorf("store: %s: %w", table, err)
			}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, n, dbErr("read "+table, err)
	}
	return h.Sum(nil), n, nil
}

func digestValue(h hash.Hash, v any) error {
	var tag byte
	var b []byte
	switch x := v.(type) {
	case nil:
		tag = 'N'
	case int64:
		tag, b = 'I', binary.BigEndian.AppendUint64(nil, uint64(x))
	case int32:
		tag, b = 'I', binary.BigEndian.AppendUint64(nil, uint64(int64(x)))
	case bool:
		tag, b = 'I', binary.BigEndian.AppendUint64(nil, uint64(boolInt(x)))
	case string:
		tag, b = 'T', []byte(x)
	case []byte:
		tag, b = 'B', x
	default:
		return fmt.Errorf("unexpected column value of type %T", v)
	}
	h.Write([]byte{tag})
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
	h.Write(b)
	return nil
}
