package store

import (
	"context"
	"database/sql"
	"fmt"
)

// KeyAccess grants a user the use of a key (Sigul's key_accesses row).
type KeyAccess struct {
	// ID is the database row id.
	ID int64
	// KeyID and KeyName identify the key.
	KeyID   int64
	KeyName string
	// UserID and UserName identify the user.
	UserID   int64
	UserName string
	// WrappedPIN is the token PIN wrapped under the user's passphrase;
	// opaque to the store. List methods leave it nil.
	WrappedPIN []byte
	// KeyAdmin lets the user administer the key (grant and revoke
	// access).
	KeyAdmin bool
}

// AccessUpdate lists the changes UpdateAccess makes.
type AccessUpdate struct {
	// WrappedPIN, if non-nil, replaces the wrapped PIN (change-passphrase);
	// it must not be empty.
	WrappedPIN []byte
	// KeyAdmin, if set, changes the key-admin flag (modify-key-user).
	KeyAdmin *bool
}

// readTx runs fn in a read-only (deferred) transaction, giving it a
// consistent snapshot.
func (s *Store) readTx(ctx context.Context, fn func(tx *txn) error) error {
	tx, err := s.dialect.beginRead(ctx, s.db)
	if err != nil {
		return fmt.Errorf("store: begin transaction: %w", err)
	}
	defer tx.Rollback()
	return fn(&txn{tx: tx, d: s.dialect, c: s.stmts})
}

// lookupAccess resolves a (key, user) pair. It reports a missing user
// first, then a missing key, as Sigul does; if both exist it returns their
// ids in a and whether an access row exists (with its fields).
func lookupAccess(ctx context.Context, q queryer, keyName, userName string) (a KeyAccess, found bool, err error) {
	var userID, keyID, id sql.NullInt64
	var pin []byte
	var admin sql.NullBool
	err = q.QueryRowContext(ctx, `SELECT u.id, k.id, a.id, a.wrapped_pin, a.key_admin
		FROM (SELECT 1) AS one
		LEFT JOIN users u ON u.name = ?
		LEFT JOIN keys k ON k.name = ?
		LEFT JOIN key_accesses a ON a.user_id = u.id AND a.key_id = k.id`,
		userName, keyName).Scan(&userID, &keyID, &id, &pin, &admin)
	if err != nil {
		return KeyAccess{}, false, dbErr("get key access", err)
	}
	switch {
	case !userID.Valid:
		return KeyAccess{}, false, notFound(KindUser, userName, "")
	case !keyID.Valid:
		return KeyAccess{}, false, notFound(KindKey, keyName, "")
	}
	a = KeyAccess{
		ID: id.Int64, KeyID: keyID.Int64, KeyName: keyName, UserID: userID.Int64, UserName: userName,
		WrappedPIN: pin, KeyAdmin: admin.Bool,
	}
	return a, id.Valid, nil
}

// getAccess is lookupAccess with a missing access reported as an error.
func getAccess(ctx context.Context, q queryer, keyName, userName string) (KeyAccess, error) {
	a, found, err := lookupAccess(ctx, q, keyName, userName)
	if err != nil {
		return KeyAccess{}, err
	}
	if !found {
		return KeyAccess{}, notFound(KindAccess, userName, keyName)
	}
	return a, nil
}

// Grant gives the named user access to the named key, storing wrappedPIN
// (the token PIN wrapped under the user's passphrase). An existing access
// for the pair yields an error matching [ErrExists]; use UpdateAccess to
// change it.
func (s *Store) Grant(ctx context.Context, keyName, userName string, wrappedPIN []byte, keyAdmin bool) (KeyAccess, error) {
	if len(wrappedPIN) == 0 {
		return KeyAccess{}, invalid("empty wrapped PIN for user %q on key %q", userName, keyName)
	}
	var a KeyAccess
	err := s.writeTx(ctx, func(tx *txn) error {
		var found bool
		var err error
		if a, found, err = lookupAccess(ctx, tx, keyName, userName); err != nil {
			return err
		}
		if found {
			return exists(KindAccess, userName, keyName)
		}
		id, err := tx.insertID(ctx, `INSERT INTO key_accesses (key_id, user_id, wrapped_pin, key_admin)
			VALUES (?, ?, ?, ?)`, a.KeyID, a.UserID, wrappedPIN, boolInt(keyAdmin))
		if isUnique(err) {
			return exists(KindAccess, userName, keyName)
		}
		if err != nil {
			return dbErr("grant key access", err)
		}
		a.ID = id
		return nil
	})
	if err != nil {
		return KeyAccess{}, err
	}
	a.KeyName, a.UserName = keyName, userName
	a.WrappedPIN = append([]byte(nil), wrappedPIN...)
	a.KeyAdmin = keyAdmin
	return a, nil
}

// GetAccess returns the named user's access to the named key, including
// the wrapped PIN. The error names whichever of user, key or access is
// missing.
func (s *Store) GetAccess(ctx context.Context, keyName, userName string) (KeyAccess, error) {
	return getAccess(ctx, s.q(), keyName, userName)
}

// listAccesses runs a key_accesses query and scans rows without the PIN.
func listAccesses(ctx context.Context, q queryer, where string, arg any) ([]KeyAccess, error) {
	rows, err := q.QueryContext(ctx, `SELECT a.id, k.id, k.name, u.id, u.name, a.key_admin
		FROM key_accesses a JOIN keys k ON k.id = a.key_id JOIN users u ON u.id = a.user_id
		WHERE `+where+` ORDER BY k.name, u.name`, arg)
	if err != nil {
		return nil, dbErr("list key accesses", err)
	}
	defer rows.Close()
	var out []KeyAccess
	for rows.Next() {
		var a KeyAccess
		if err := rows.Scan(&a.ID, &a.KeyID, &a.KeyName, &a.UserID, &a.UserName, &a.KeyAdmin); err != nil {
			return nil, dbErr("list key accesses", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("list key accesses", err)
	}
	return out, nil
}

// ListAccesses returns the accesses to the named key ordered by user name
// (Sigul's list-key-users), without wrapped PINs.
func (s *Store) ListAccesses(ctx context.Context, keyName string) ([]KeyAccess, error) {
	var out []KeyAccess
	err := s.readTx(ctx, func(tx *txn) error {
		id, err := keyID(ctx, tx, keyName)
		if err != nil {
			return err
		}
		out, err = listAccesses(ctx, tx, `a.key_id = ?`, id)
		return err
	})
	return out, err
}

// listUserAccesses returns the named user's key accesses ordered by key
// name, without wrapped PINs.
func (s *Store) listUserAccesses(ctx context.Context, userName string) ([]KeyAccess, error) {
	var out []KeyAccess
	err := s.readTx(ctx, func(tx *txn) error {
		u, err := getUser(ctx, tx, userName)
		if err != nil {
			return err
		}
		out, err = listAccesses(ctx, tx, `a.user_id = ?`, u.ID)
		return err
	})
	return out, err
}

// UpdateAccess changes the wrapped PIN and/or key-admin flag of an
// existing access and returns the result.
func (s *Store) UpdateAccess(ctx context.Context, keyName, userName string, upd AccessUpdate) (KeyAccess, error) {
	if upd.WrappedPIN != nil && len(upd.WrappedPIN) == 0 {
		return KeyAccess{}, invalid("empty wrapped PIN for user %q on key %q", userName, keyName)
	}
	var a KeyAccess
	err := s.writeTx(ctx, func(tx *txn) error {
		var err error
		if a, err = getAccess(ctx, tx, keyName, userName); err != nil {
			return err
		}
		if upd.WrappedPIN != nil {
			a.WrappedPIN = append([]byte(nil), upd.WrappedPIN...)
		}
		if upd.KeyAdmin != nil {
			a.KeyAdmin = *upd.KeyAdmin
		}
		if _, err := tx.ExecContext(ctx, `UPDATE key_accesses SET wrapped_pin = ?, key_admin = ? WHERE id = ?`,
			a.WrappedPIN, boolInt(a.KeyAdmin), a.ID); err != nil {
			return dbErr("update key access", err)
		}
		return nil
	})
	if err != nil {
		return KeyAccess{}, err
	}
	return a, nil
}

// Revoke removes the named user's access to the named key. Like Sigul, it
// refuses to remove the key's only access (error matching [ErrLastAccess]);
// delete the key instead.
func (s *Store) Revoke(ctx context.Context, keyName, userName string) error {
	return s.writeTx(ctx, func(tx *txn) error {
		a, err := getAccess(ctx, tx, keyName, userName)
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM key_accesses WHERE key_id = ?`, a.KeyID).Scan(&n); err != nil {
			return dbErr("revoke key access", err)
		}
		if n <= 1 {
			return fmt.Errorf("store: user %q has the only access to key %q: %w", userName, keyName, ErrLastAccess)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_accesses WHERE id = ?`, a.ID); err != nil {
			return dbErr("revoke key access", err)
		}
		return nil
	})
}

// WrappedPINHeaders returns the first n bytes of every stored wrapped PIN
// (all of it when shorter), in row order: the KDF parameters a wrapped PIN
// records in its header, without the ciphertext. The authenticator makes
// its decoys' cost from them.
func (s *Store) WrappedPINHeaders(ctx context.Context, n int) ([][]byte, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT substr(wrapped_pin, 1, ?) FROM key_accesses ORDER BY id`, n)
	if err != nil {
		return nil, dbErr("read wrapped PIN headers", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return nil, dbErr("read wrapped PIN headers", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("read wrapped PIN headers", err)
	}
	return out, nil
}

// AllAccesses returns every access row, with its wrapped PIN, ordered by
// key and user name.
func (s *Store) AllAccesses(ctx context.Context) ([]KeyAccess, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT a.id, k.id, k.name, u.id, u.name, a.key_admin, a.wrapped_pin
		FROM key_accesses a JOIN keys k ON k.id = a.key_id JOIN users u ON u.id = a.user_id
		ORDER BY k.name, u.name`)
	if err != nil {
		return nil, dbErr("list key accesses", err)
	}
	defer rows.Close()
	var out []KeyAccess
	for rows.Next() {
		var a KeyAccess
		if err := rows.Scan(&a.ID, &a.KeyID, &a.KeyName, &a.UserID, &a.UserName, &a.KeyAdmin, &a.WrappedPIN); err != nil {
			return nil, dbErr("list key accesses", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("list key accesses", err)
	}
	return out, nil
}

// ReplaceWrappedPINs, in one transaction, gives the access rows in rewrap
// (by row id) their new wrapped PINs and deletes the rows in remove: a
// token PIN change, after which every row either wraps the new PIN or is
// gone. Every row named must exist.
func (s *Store) ReplaceWrappedPINs(ctx context.Context, rewrap map[int64][]byte, remove []int64) error {
	return s.writeTx(ctx, func(tx *txn) error {
		for id, w := range rewrap {
			if len(w) == 0 {
				return invalid("empty wrapped PIN for access row %d", id)
			}
			res, err := tx.ExecContext(ctx, `UPDATE key_accesses SET wrapped_pin = ? WHERE id = ?`, w, id)
			if err != nil {
				return dbErr("rewrap access", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return invalid("access row %d is gone", id)
			}
		}
		for _, id := range remove {
			res, err := tx.ExecContext(ctx, `DELETE FROM key_accesses WHERE id = ?`, id)
			if err != nil {
				return dbErr("remove access", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return invalid("access row %d is gone", id)
			}
		}
		return nil
	})
}
