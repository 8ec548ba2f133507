package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// User is a Sigul user: a name, a server-admin flag and, for admins, an
// Argon2id password hash.
type User struct {
	// ID is the database row id, assigned by AddUser.
	ID int64
	// Name is the unique user name.
	Name string
	// Admin marks a server administrator (Sigul's sigul_admin).
	Admin bool
	// PasswordHash is a PHC string from [HashPassword], or "" when the
	// user has no admin password (stored as NULL).
	PasswordHash string
}

// UserUpdate lists the changes UpdateUser makes; nil fields are left alone.
type UserUpdate struct {
	// Name, if set, renames the user.
	Name *string
	// Admin, if set, changes the admin flag.
	Admin *bool
	// PasswordHash, if set, replaces the password hash; a pointer to ""
	// removes it.
	PasswordHash *string
}

func checkPasswordHash(h string) error {
	if h == "" {
		return nil
	}
	if _, err := parsePHC(h); err != nil {
		// Do not echo the value: it might be a password passed by
		// mistake.
		return invalid("password hash is not an Argon2id PHC string from HashPassword")
	}
	return nil
}

const userColumns = `id, name, admin, password_hash`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var pw sql.NullString
	if err := row.Scan(&u.ID, &u.Name, &u.Admin, &pw); err != nil {
		return User{}, err
	}
	u.PasswordHash = pw.String
	return u, nil
}

func getUser(ctx context.Context, q queryer, name string) (User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, notFound(KindUser, name, "")
	}
	if err != nil {
		return User{}, dbErr("get user", err)
	}
	return u, nil
}

// AddUser creates a user and returns it with its ID set (u.ID is ignored).
// A user of the same name yields an error matching [ErrExists].
func (s *Store) AddUser(ctx context.Context, u User) (User, error) {
	if err := checkName("user", u.Name); err != nil {
		return User{}, err
	}
	if err := checkPasswordHash(u.PasswordHash); err != nil {
		return User{}, err
	}
	err := s.writeTx(ctx, func(tx *txn) error {
		id, err := tx.insertID(ctx, `INSERT INTO users (name, admin, password_hash) VALUES (?, ?, ?)`,
			u.Name, boolInt(u.Admin), nullString(u.PasswordHash))
		if isUnique(err) {
			return exists(KindUser, u.Name, "")
		}
		if err != nil {
			return dbErr("add user", err)
		}
		u.ID = id
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// GetUser returns the named user.
func (s *Store) GetUser(ctx context.Context, name string) (User, error) {
	return getUser(ctx, s.q(), name)
}

// ListUsers returns all users ordered by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, dbErr("list users", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, dbErr("list users", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("list users", err)
	}
	return users, nil
}

// UpdateUser applies upd to the named user (Sigul's modify-user) and
// returns the result. Renaming onto an existing name yields an error
// matching [ErrExists].
func (s *Store) UpdateUser(ctx context.Context, name string, upd UserUpdate) (User, error) {
	if upd.Name != nil {
		if err := checkName("user", *upd.Name); err != nil {
			return User{}, err
		}
	}
	if upd.PasswordHash != nil {
		if err := checkPasswordHash(*upd.PasswordHash); err != nil {
			return User{}, err
		}
	}
	var u User
	err := s.writeTx(ctx, func(tx *txn) error {
		var err error
		if u, err = getUser(ctx, tx, name); err != nil {
			return err
		}
		if upd.Name != nil {
			u.Name = *upd.Name
		}
		if upd.Admin != nil {
			u.Admin = *upd.Admin
		}
		if upd.PasswordHash != nil {
			u.PasswordHash = *upd.PasswordHash
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET name = ?, admin = ?, password_hash = ? WHERE id = ?`,
			u.Name, boolInt(u.Admin), nullString(u.PasswordHash), u.ID)
		if isUnique(err) {
			return exists(KindUser, u.Name, "")
		}
		if err != nil {
			return dbErr("update user", err)
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// DeleteUser deletes the named user. Like Sigul, it refuses (with an error
// matching [ErrInUse]) while the user still has key accesses, unless force
// is set, in which case the accesses are deleted too. Forcing can leave a
// key with no access at all; only a server admin can then delete it.
func (s *Store) DeleteUser(ctx context.Context, name string, force bool) error {
	return s.writeTx(ctx, func(tx *txn) error {
		u, err := getUser(ctx, tx, name)
		if err != nil {
			return err
		}
		if !force {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM key_accesses WHERE user_id = ?`, u.ID).Scan(&n); err != nil {
				return dbErr("delete user", err)
			}
			if n > 0 {
				return fmt.Errorf("store: user %q still has access to %d key(s): %w", name, n, ErrInUse)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, u.ID); err != nil {
			return dbErr("delete user", err)
		}
		return nil
	})
}
