package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func testKey(name string) Key {
	return Key{
		Name:      name,
		KeyType:   "rsa4096",
		Token:     "signet-token",
		ObjectID:  []byte("id-" + name),
		PublicKey: []byte("spki-" + name),
	}
}

// seed creates users alice (admin), bob and carol and keys k1 and k2;
// bob is key admin of k1, carol a plain user of k1.
func seed(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	hash, err := HashPasswordWithParams([]byte("alice-pw"), cheapParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []User{{Name: "alice", Admin: true, PasswordHash: hash}, {Name: "bob"}, {Name: "carol"}} {
		if _, err := s.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"k1", "k2"} {
		if _, err := s.AddKey(ctx, testKey(k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Grant(ctx, "k1", "bob", []byte("pin-bob"), true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Grant(ctx, "k1", "carol", []byte("pin-carol"), false); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func names[T any](xs []T, name func(T) string) string {
	var out []string
	for _, x := range xs {
		out = append(out, name(x))
	}
	return strings.Join(out, ",")
}

func TestUsers(t *testing.T) { forBackends(t, testUsers) }

func testUsers(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)

	hash, err := HashPasswordWithParams([]byte("pw"), cheapParams)
	if err != nil {
		t.Fatal(err)
	}
	zed, err := s.AddUser(ctx, User{Name: "zed", Admin: true, PasswordHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	if zed.ID == 0 {
		t.Error("AddUser did not set ID")
	}
	if _, err := s.AddUser(ctx, User{Name: "amy"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetUser(ctx, "zed")
	if err != nil || got != zed {
		t.Fatalf("GetUser = %+v, %v; want %+v", got, err, zed)
	}
	amy, err := s.GetUser(ctx, "amy")
	if err != nil || amy.Admin || amy.PasswordHash != "" {
		t.Errorf("GetUser(amy) = %+v, %v", amy, err)
	}
	users, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(users, func(u User) string { return u.Name }); got != "amy,zed" {
		t.Errorf("ListUsers = %s, want amy,zed", got)
	}

	// Rename, drop admin, clear password.
	upd, err := s.UpdateUser(ctx, "zed", UserUpdate{Name: ptr("zoe"), Admin: ptr(false), PasswordHash: ptr("")})
	if err != nil {
		t.Fatal(err)
	}
	want := User{ID: zed.ID, Name: "zoe"}
	if upd != want {
		t.Errorf("UpdateUser = %+v, want %+v", upd, want)
	}
	if got, err := s.GetUser(ctx, "zoe"); err != nil || got != want {
		t.Errorf("after update GetUser = %+v, %v", got, err)
	}
	if _, err := s.GetUser(ctx, "zed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old name still found: %v", err)
	}
	// Partial update leaves other fields alone.
	upd, err = s.UpdateUser(ctx, "zoe", UserUpdate{PasswordHash: &hash})
	if err != nil || upd.PasswordHash != hash || upd.Name != "zoe" || upd.Admin {
		t.Errorf("UpdateUser(password) = %+v, %v", upd, err)
	}
	if ok, err := VerifyPassword(upd.PasswordHash, []byte("pw")); !ok || err != nil {
		t.Errorf("stored hash does not verify: %v, %v", ok, err)
	}

	if err := s.DeleteUser(ctx, "zoe", false); err != nil {
		t.Fatal(err)
	}
	users, _ = s.ListUsers(ctx)
	if got := names(users, func(u User) string { return u.Name }); got != "amy" {
		t.Errorf("after delete ListUsers = %s", got)
	}
}

func TestKeys(t *testing.T) { forBackends(t, testKeys) }

func testKeys(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)

	created := time.Date(2024, 3, 1, 12, 0, 0, 123, time.FixedZone("X", 3600))
	in := testKey("fedora-40")
	in.KeyType = "ecdsa-p256"
	in.PGPCreated = created
	in.PGPCertificate = []byte{0x99, 1, 2}
	in.Fingerprint = "0123456789abcdef0123456789abcdef01234567"
	k, err := s.AddKey(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID == 0 || k.CreatedAt.IsZero() || k.CreatedAt.Location() != time.UTC {
		t.Errorf("AddKey did not set ID/CreatedAt: %+v", k)
	}
	if !k.PGPCreated.Equal(time.Unix(created.Unix(), 0)) || k.PGPCreated.Nanosecond() != 0 {
		t.Errorf("PGPCreated = %v, want whole seconds of %v", k.PGPCreated, created)
	}
	if k.Fingerprint != strings.ToUpper(in.Fingerprint) {
		t.Errorf("Fingerprint = %q, want upper case", k.Fingerprint)
	}
	got, err := s.GetKey(ctx, "fedora-40")
	if err != nil {
		t.Fatal(err)
	}
	if !keysEqual(got, k) {
		t.Errorf("GetKey = %+v\nwant %+v", got, k)
	}
	plain, err := s.AddKey(ctx, testKey("epel"))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Fingerprint != "" || !plain.PGPCreated.IsZero() || plain.PGPCertificate != nil {
		t.Errorf("optional fields not empty: %+v", plain)
	}
	keys, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(keys, func(k Key) string { return k.Name }); got != "epel,fedora-40" {
		t.Errorf("ListKeys = %s", got)
	}
	if !keysEqual(keys[1], k) {
		t.Errorf("ListKeys[1] = %+v, want %+v", keys[1], k)
	}

	// Set the OpenPGP fields on the plain key, then clear them again.
	when := time.Unix(1700000000, 0).UTC()
	fp := strings.Repeat("AB", 20)
	upd, err := s.UpdateKey(ctx, "epel", KeyUpdate{PGPCreated: &when, PGPCertificate: ptr([]byte("cert")), Fingerprint: &fp})
	if err != nil {
		t.Fatal(err)
	}
	if !upd.PGPCreated.Equal(when) || string(upd.PGPCertificate) != "cert" || upd.Fingerprint != fp {
		t.Errorf("UpdateKey = %+v", upd)
	}
	if got, _ := s.GetKey(ctx, "epel"); !keysEqual(got, upd) {
		t.Errorf("GetKey after update = %+v, want %+v", got, upd)
	}
	upd, err = s.UpdateKey(ctx, "epel", KeyUpdate{Name: ptr("epel-9"), PGPCreated: &time.Time{}, PGPCertificate: ptr([]byte(nil)), Fingerprint: ptr("")})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetKey(ctx, "epel-9"); !keysEqual(got, upd) || got.Fingerprint != "" || !got.PGPCreated.IsZero() || got.PGPCertificate != nil {
		t.Errorf("GetKey after clearing = %+v", got)
	}
	if !bytes.Equal(upd.PublicKey, plain.PublicKey) || !bytes.Equal(upd.ObjectID, plain.ObjectID) || upd.Token != plain.Token {
		t.Errorf("UpdateKey changed fields it should not: %+v", upd)
	}

	if err := s.DeleteKey(ctx, "epel-9"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetKey(ctx, "epel-9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted key still found: %v", err)
	}
}

func keysEqual(a, b Key) bool {
	return a.ID == b.ID && a.Name == b.Name && a.KeyType == b.KeyType && a.Token == b.Token &&
		bytes.Equal(a.ObjectID, b.ObjectID) && bytes.Equal(a.PublicKey, b.PublicKey) &&
		a.PGPCreated.Equal(b.PGPCreated) && bytes.Equal(a.PGPCertificate, b.PGPCertificate) &&
		a.Fingerprint == b.Fingerprint && a.CreatedAt.Equal(b.CreatedAt)
}

func TestAccesses(t *testing.T) { forBackends(t, testAccesses) }

func testAccesses(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	seed(t, s)

	a, err := s.GetAccess(ctx, "k1", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if string(a.WrappedPIN) != "pin-carol" || a.KeyAdmin || a.KeyName != "k1" || a.UserName != "carol" || a.ID == 0 || a.KeyID == 0 || a.UserID == 0 {
		t.Errorf("GetAccess = %+v", a)
	}
	g, err := s.Grant(ctx, "k2", "carol", []byte("pin-carol-2"), true)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetAccess(ctx, "k2", "carol"); got.ID != g.ID || !got.KeyAdmin || string(got.WrappedPIN) != "pin-carol-2" {
		t.Errorf("Grant returned %+v, stored %+v", g, got)
	}

	list, err := s.ListAccesses(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(list, func(a KeyAccess) string {
		return a.UserName + ":" + map[bool]string{true: "admin", false: "user"}[a.KeyAdmin]
	}); got != "bob:admin,carol:user" {
		t.Errorf("ListAccesses(k1) = %s", got)
	}
	for _, a := range list {
		if a.WrappedPIN != nil {
			t.Errorf("ListAccesses leaked the wrapped PIN of %s", a.UserName)
		}
	}
	if list, err := s.ListAccesses(ctx, "k2"); err != nil || len(list) != 1 {
		t.Errorf("ListAccesses(k2) = %v, %v", list, err)
	}
	ua, err := s.listUserAccesses(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ua, func(a KeyAccess) string { return a.KeyName }); got != "k1,k2" {
		t.Errorf("ListUserAccesses(carol) = %s", got)
	}
	if ua, err := s.listUserAccesses(ctx, "alice"); err != nil || len(ua) != 0 {
		t.Errorf("ListUserAccesses(alice) = %v, %v", ua, err)
	}

	// change-passphrase, then modify-key-user.
	u, err := s.UpdateAccess(ctx, "k1", "carol", AccessUpdate{WrappedPIN: []byte("new-pin")})
	if err != nil || string(u.WrappedPIN) != "new-pin" || u.KeyAdmin {
		t.Errorf("UpdateAccess(pin) = %+v, %v", u, err)
	}
	u, err = s.UpdateAccess(ctx, "k1", "carol", AccessUpdate{KeyAdmin: ptr(true)})
	if err != nil || string(u.WrappedPIN) != "new-pin" || !u.KeyAdmin {
		t.Errorf("UpdateAccess(admin) = %+v, %v", u, err)
	}
	if got, _ := s.GetAccess(ctx, "k1", "carol"); string(got.WrappedPIN) != "new-pin" || !got.KeyAdmin {
		t.Errorf("stored after UpdateAccess: %+v", got)
	}

	if err := s.Revoke(ctx, "k1", "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccess(ctx, "k1", "carol"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked access still found: %v", err)
	}
	// bob now holds the only access to k1: Sigul refuses to revoke it.
	err = s.Revoke(ctx, "k1", "bob")
	if !errors.Is(err, ErrLastAccess) || !strings.Contains(err.Error(), `"bob"`) || !strings.Contains(err.Error(), `"k1"`) {
		t.Errorf("revoking the last access: %v", err)
	}
	if _, err := s.GetAccess(ctx, "k1", "bob"); err != nil {
		t.Errorf("last access was removed: %v", err)
	}
}

func TestCertificates(t *testing.T) { forBackends(t, testCertificates) }

func testCertificates(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	seed(t, s)

	c, err := s.PutCertificate(ctx, "k1", "secureboot", []byte{0x30, 1}, false)
	if err != nil || c.ID == 0 || c.KeyName != "k1" || c.Name != "secureboot" {
		t.Fatalf("PutCertificate = %+v, %v", c, err)
	}
	if _, err := s.PutCertificate(ctx, "k1", "ca", []byte{0x30, 2}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCertificate(ctx, "k2", "secureboot", []byte{0x30, 3}, false); err != nil {
		t.Fatalf("same certificate name on another key: %v", err)
	}
	got, err := s.GetCertificate(ctx, "k1", "secureboot")
	if err != nil || got.ID != c.ID || !bytes.Equal(got.DER, []byte{0x30, 1}) {
		t.Errorf("GetCertificate = %+v, %v", got, err)
	}
	r, err := s.PutCertificate(ctx, "k1", "secureboot", []byte{0x30, 9}, true)
	if err != nil || r.ID != c.ID {
		t.Errorf("replace = %+v, %v", r, err)
	}
	if got, _ := s.GetCertificate(ctx, "k1", "secureboot"); !bytes.Equal(got.DER, []byte{0x30, 9}) {
		t.Errorf("replaced DER = %x", got.DER)
	}
	list, err := s.ListCertificates(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(list, func(c Certificate) string { return c.Name }); got != "ca,secureboot" {
		t.Errorf("ListCertificates = %s", got)
	}
	if err := s.deleteCertificate(ctx, "k1", "ca"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListCertificates(ctx, "k1"); len(list) != 1 {
		t.Errorf("after delete: %v", list)
	}
	if list, err := s.ListCertificates(ctx, "k2"); err != nil || len(list) != 1 {
		t.Errorf("k2 certificates = %v, %v", list, err)
	}
}

func TestNotFound(t *testing.T) { forBackends(t, testNotFound) }

func testNotFound(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	seed(t, s)

	tests := []struct {
		name string
		call func() error
		want NotFoundError
	}{
		{"GetUser", func() error { _, err := s.GetUser(ctx, "nobody"); return err }, NotFoundError{KindUser, "nobody", ""}},
		{"UpdateUser", func() error { _, err := s.UpdateUser(ctx, "nobody", UserUpdate{Admin: ptr(true)}); return err }, NotFoundError{KindUser, "nobody", ""}},
		{"DeleteUser", func() error { return s.DeleteUser(ctx, "nobody", true) }, NotFoundError{KindUser, "nobody", ""}},
		{"GetKey", func() error { _, err := s.GetKey(ctx, "nokey"); return err }, NotFoundError{KindKey, "nokey", ""}},
		{"UpdateKey", func() error { _, err := s.UpdateKey(ctx, "nokey", KeyUpdate{Name: ptr("x")}); return err }, NotFoundError{KindKey, "nokey", ""}},
		{"DeleteKey", func() error { return s.DeleteKey(ctx, "nokey") }, NotFoundError{KindKey, "nokey", ""}},
		{"Grant missing user", func() error { _, err := s.Grant(ctx, "k1", "nobody", []byte("p"), false); return err }, NotFoundError{KindUser, "nobody", ""}},
		{"Grant missing key", func() error { _, err := s.Grant(ctx, "nokey", "bob", []byte("p"), false); return err }, NotFoundError{KindKey, "nokey", ""}},
		{"Grant both missing reports user", func() error { _, err := s.Grant(ctx, "nokey", "nobody", []byte("p"), false); return err }, NotFoundError{KindUser, "nobody", ""}},
		{"GetAccess missing user", func() error { _, err := s.GetAccess(ctx, "k1", "nobody"); return err }, NotFoundError{KindUser, "nobody", ""}},
		{"GetAccess missing key", func() error { _, err := s.GetAccess(ctx, "nokey", "bob"); return err }, NotFoundError{KindKey, "nokey", ""}},
		{"GetAccess no access", func() error { _, err := s.GetAccess(ctx, "k2", "bob"); return err }, NotFoundError{KindAccess, "bob", "k2"}},
		{"UpdateAccess", func() error {
			_, err := s.UpdateAccess(ctx, "k2", "alice", AccessUpdate{KeyAdmin: ptr(true)})
			return err
		}, NotFoundError{KindAccess, "alice", "k2"}},
		{"Revoke", func() error { return s.Revoke(ctx, "k2", "bob") }, NotFoundError{KindAccess, "bob", "k2"}},
		{"ListAccesses", func() error { _, err := s.ListAccesses(ctx, "nokey"); return err }, NotFoundError{KindKey, "nokey", ""}},
		{"ListUserAccesses", func() error { _, err := s.listUserAccesses(ctx, "nobody"); return err }, NotFoundError{KindUser, "nobody", ""}},
		{"PutCertificate", func() error { _, err := s.PutCertificate(ctx, "nokey", "c", []byte{1}, true); return err }, NotFoundError{KindKey, "nokey", ""}},
		{"GetCertificate missing key", func() error { _, err := s.GetCertificate(ctx, "nokey", "c"); return err }, NotFoundError{KindKey, "nokey", ""}},
		{"GetCertificate missing cert", func() error { _, err := s.GetCertificate(ctx, "k1", "nocert"); return err }, NotFoundError{KindCertificate, "nocert", "k1"}},
		{"ListCertificates", func() error { _, err := s.ListCertificates(ctx, "nokey"); return err }, NotFoundError{KindKey, "nokey", ""}},
		{"DeleteCertificate", func() error { return s.deleteCertificate(ctx, "k1", "nocert") }, NotFoundError{KindCertificate, "nocert", "k1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("error %v does not match ErrNotFound", err)
			}
			var nf *NotFoundError
			if !errors.As(err, &nf) || *nf != tt.want {
				t.Fatalf("error %#v, want %#v", nf, tt.want)
			}
			msg := err.Error()
			for _, part := range []string{string(tt.want.Kind), `"` + tt.want.Name + `"`, "not found"} {
				if !strings.Contains(msg, part) {
					t.Errorf("message %q does not contain %q", msg, part)
				}
			}
			if tt.want.Key != "" && !strings.Contains(msg, `"`+tt.want.Key+`"`) {
				t.Errorf("message %q does not name key %q", msg, tt.want.Key)
			}
		})
	}
}

func TestExists(t *testing.T) { forBackends(t, testExists) }

func testExists(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	seed(t, s)

	tests := []struct {
		name string
		call func() error
		want ExistsError
	}{
		{"AddUser", func() error { _, err := s.AddUser(ctx, User{Name: "bob"}); return err }, ExistsError{KindUser, "bob", ""}},
		{"UpdateUser rename", func() error { _, err := s.UpdateUser(ctx, "bob", UserUpdate{Name: ptr("carol")}); return err }, ExistsError{KindUser, "carol", ""}},
		{"AddKey", func() error { _, err := s.AddKey(ctx, testKey("k1")); return err }, ExistsError{KindKey, "k1", ""}},
		{"UpdateKey rename", func() error { _, err := s.UpdateKey(ctx, "k1", KeyUpdate{Name: ptr("k2")}); return err }, ExistsError{KindKey, "k2", ""}},
		{"Grant", func() error { _, err := s.Grant(ctx, "k1", "carol", []byte("p"), true); return err }, ExistsError{KindAccess, "carol", "k1"}},
		{"PutCertificate", func() error {
			if _, err := s.PutCertificate(ctx, "k1", "c", []byte{1}, false); err != nil {
				return err
			}
			_, err := s.PutCertificate(ctx, "k1", "c", []byte{2}, false)
			return err
		}, ExistsError{KindCertificate, "c", "k1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrExists) {
				t.Fatalf("error %v does not match ErrExists", err)
			}
			var ee *ExistsError
			if !errors.As(err, &ee) || *ee != tt.want {
				t.Fatalf("error %#v, want %#v", ee, tt.want)
			}
			if !strings.Contains(err.Error(), `"`+tt.want.Name+`"`) {
				t.Errorf("message %q does not name %q", err, tt.want.Name)
			}
		})
	}
	// The refused Grant did not overwrite the existing PIN or flag.
	if a, _ := s.GetAccess(ctx, "k1", "carol"); string(a.WrappedPIN) != "pin-carol" || a.KeyAdmin {
		t.Errorf("refused Grant changed the access: %+v", a)
	}
	if c, _ := s.GetCertificate(ctx, "k1", "c"); !bytes.Equal(c.DER, []byte{1}) {
		t.Errorf("refused PutCertificate replaced the DER")
	}
}

func TestInvalidArguments(t *testing.T) { forBackends(t, testInvalidArguments) }

func testInvalidArguments(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	seed(t, s)

	keyWith := func(f func(*Key)) Key { k := testKey("new"); f(&k); return k }
	tests := []struct {
		name string
		call func() error
	}{
		{"empty user name", func() error { _, err := s.AddUser(ctx, User{}); return err }},
		{"control char in user name", func() error { _, err := s.AddUser(ctx, User{Name: "a\x00b"}); return err }},
		{"overlong user name", func() error { _, err := s.AddUser(ctx, User{Name: strings.Repeat("x", 256)}); return err }},
		{"invalid UTF-8 name", func() error { _, err := s.AddUser(ctx, User{Name: "\xff"}); return err }},
		{"plaintext as password hash", func() error { _, err := s.AddUser(ctx, User{Name: "x", PasswordHash: "hunter2"}); return err }},
		{"rename user to empty", func() error { _, err := s.UpdateUser(ctx, "bob", UserUpdate{Name: ptr("")}); return err }},
		{"update to bad password hash", func() error { _, err := s.UpdateUser(ctx, "bob", UserUpdate{PasswordHash: ptr("x")}); return err }},
		{"empty key type", func() error { _, err := s.AddKey(ctx, keyWith(func(k *Key) { k.KeyType = "" })); return err }},
		{"empty token", func() error { _, err := s.AddKey(ctx, keyWith(func(k *Key) { k.Token = "" })); return err }},
		{"empty object id", func() error { _, err := s.AddKey(ctx, keyWith(func(k *Key) { k.ObjectID = nil })); return err }},
		{"empty public key", func() error { _, err := s.AddKey(ctx, keyWith(func(k *Key) { k.PublicKey = []byte{} })); return err }},
		{"bad fingerprint", func() error { _, err := s.AddKey(ctx, keyWith(func(k *Key) { k.Fingerprint = "xyz" })); return err }},
		{"update bad fingerprint", func() error {
			_, err := s.UpdateKey(ctx, "k1", KeyUpdate{Fingerprint: ptr(strings.Repeat("g", 40))})
			return err
		}},
		{"empty wrapped PIN", func() error { _, err := s.Grant(ctx, "k2", "bob", nil, false); return err }},
		{"update to empty wrapped PIN", func() error {
			_, err := s.UpdateAccess(ctx, "k1", "bob", AccessUpdate{WrappedPIN: []byte{}})
			return err
		}},
		{"empty certificate", func() error { _, err := s.PutCertificate(ctx, "k1", "c", nil, false); return err }},
		{"empty certificate name", func() error { _, err := s.PutCertificate(ctx, "k1", "", []byte{1}, false); return err }},
		{"audit without operation", func() error { _, err := s.AppendAudit(ctx, AuditRecord{Actor: "bob"}); return err }},
		{"audit time after year 9999", func() error {
			_, err := s.AppendAudit(ctx, AuditRecord{Operation: "x", At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
		})
	}
	if _, err := s.GetKey(ctx, "new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an invalid AddKey stored something: %v", err)
	}
	if err := func() error { _, err := s.AddUser(ctx, User{Name: "x", PasswordHash: "hunter2"}); return err }(); strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error echoes the would-be password hash: %v", err)
	}
}

func TestDeleteKeyCascades(t *testing.T) { forBackends(t, testDeleteKeyCascades) }

func testDeleteKeyCascades(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	seed(t, s)
	if _, err := s.PutCertificate(ctx, "k1", "c", []byte{1}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]int{"key_accesses": 0, "certificates": 0, "users": 3, "keys": 1} {
		var n int
		if err := s.db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil || n != want {
			t.Errorf("%s rows = %d, %v; want %d", table, n, err, want)
		}
	}
	// bob no longer has accesses, so he can be deleted without force.
	if err := s.DeleteUser(ctx, "bob", false); err != nil {
		t.Errorf("DeleteUser(bob) after key deletion: %v", err)
	}
}

func TestDeleteUserWithAccesses(t *testing.T) { forBackends(t, testDeleteUserWithAccesses) }

func testDeleteUserWithAccesses(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	seed(t, s)

	err := s.DeleteUser(ctx, "bob", false)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), `"bob"`) {
		t.Fatalf("DeleteUser(bob) = %v, want ErrInUse naming bob", err)
	}
	if _, err := s.GetAccess(ctx, "k1", "bob"); err != nil {
		t.Errorf("refused delete removed the access: %v", err)
	}
	if err := s.DeleteUser(ctx, "alice", false); err != nil {
		t.Errorf("DeleteUser(alice) without accesses: %v", err)
	}
	if err := s.DeleteUser(ctx, "bob", true); err != nil {
		t.Fatalf("forced DeleteUser(bob): %v", err)
	}
	if _, err := s.GetUser(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob still exists: %v", err)
	}
	list, err := s.ListAccesses(ctx, "k1")
	if err != nil || names(list, func(a KeyAccess) string { return a.UserName }) != "carol" {
		t.Errorf("accesses after forced delete = %v, %v", list, err)
	}
}

func TestForeignKeysEnforced(t *testing.T) { forBackends(t, testForeignKeysEnforced) }

func testForeignKeysEnforced(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	// Hold several pooled connections at once: each must enforce foreign
	// keys.
	for i := range 3 {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.ExecContext(ctx, `INSERT INTO key_accesses (key_id, user_id, wrapped_pin) VALUES (999, 999, `+b.zero32()+`)`)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "foreign key") {
			t.Errorf("connection %d: dangling key access inserted: %v", i, err)
		}
	}
}
