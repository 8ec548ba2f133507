package interop

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testAdmin: user and key administration with Sigul's client, and the
// effects seen through it (list-users, user-info, list-keys,
// list-key-users, key-user-info) and through gpg (new-key's identity and
// expiry, signatures by imported and granted keys). Names used here exist
// only in this test.
func (c *sc) testAdmin(t *testing.T) {
	needTools(t, "gpg")
	adminOK := func(args ...string) result {
		t.Helper()
		return c.ok(t, c.admin(t, args...), args...)
	}
	adminWith := func(secrets []string, args ...string) result {
		t.Helper()
		return c.ok(t, c.run(t, "", "admin", secrets, args...), args...)
	}
	aliceWith := func(secrets []string, args ...string) result {
		t.Helper()
		return c.ok(t, c.run(t, "", "alice", secrets, args...), args...)
	}
	lines := func(r result) []string { return strings.Split(strings.TrimSpace(r.stdout), "\n") }
	has := func(r result, line string) bool {
		for _, l := range lines(r) {
			if l == line {
				return true
			}
		}
		return false
	}

	// Users.
	if r := adminOK("list-users"); !has(r, "admin") || !has(r, "alice") {
		t.Fatalf("list-users: %v", r)
	}
	adminOK("new-user", "intbob")
	adminWith([]string{c.s.adminPW, "carol-password"}, "new-user", "--with-password", "intcarol")
	if r := adminOK("user-info", "intcarol"); !strings.Contains(r.stdout, "Administrator: no") {
		t.Fatalf("user-info intcarol: %v", r)
	}
	adminOK("modify-user", "--admin", "yes", "--new-name", "intcarla", "intcarol")
	if r := adminOK("user-info", "intcarla"); !strings.Contains(r.stdout, "Administrator: yes") {
		t.Fatalf("user-info after modify-user --admin yes: %v", r)
	}
	fails(t, c.admin(t, "user-info", "intcarol"), "user-info of a renamed user", "The specified user was not found")
	adminWith([]string{c.s.adminPW, "carla-password-2"}, "modify-user", "--change-password", "intcarla")
	if r := adminOK("list-users"); !has(r, "intbob") || !has(r, "intcarla") || has(r, "intcarol") {
		t.Fatalf("list-users after new-user and modify-user: %v", r)
	}

	// new-key with Sigul's gnupg options: gpg sees the identity.
	pub := adminWith([]string{c.s.adminPW, "intkey-pass-1"}, "new-key", "--key-admin", "alice",
		"--gnupg-name-real", "Interop Key", "--gnupg-name-comment", "sigul client", "--gnupg-name-email", "intkey@example.org",
		"intkey").stdout
	_, env := gpgHome(t, []byte(pub))
	listing := tool(t, "", env, "gpg", "--batch", "--with-colons", "--list-keys")
	if !strings.Contains(listing, "Interop Key (sigul client) <intkey@example.org>") || expiryDate(listing) != "" {
		t.Fatalf("new-key: gpg does not see the identity asked for, with no expiry:\n%s", listing)
	}
	if r := adminOK("list-keys"); !has(r, "intkey (gnupg)") || !has(r, "demo-rsa (gnupg)") {
		t.Fatalf("list-keys: %v", r)
	}
	if r := adminOK("key-user-info", "alice", "intkey"); !strings.Contains(r.stdout, "key administrator: yes") {
		t.Fatalf("key-user-info alice intkey: %v", r)
	}
	if r := adminOK("key-user-info", "intbob", "intkey"); !strings.Contains(r.stdout, "No access defined") {
		t.Fatalf("key-user-info intbob intkey: %v", r)
	}

	// alice, key administrator, signs with it; changes its passphrase and
	// expiry.
	data := c.write(t, "admin-data.txt", []byte("signed with a key made by new-key\n"))
	aliceWith([]string{"intkey-pass-1"}, "sign-data", "-o", c.path("intkey-1.sig"), "intkey", data)
	gpgVerify(t, env, c.path("intkey-1.sig"), data)
	aliceWith([]string{"intkey-pass-1", "intkey-pass-2"}, "change-passphrase", "intkey")
	fails(t, c.run(t, "", "alice", []string{"intkey-pass-1"}, "sign-data", "-o", c.path("intkey-old.sig"), "intkey", data),
		"sign-data with the old passphrase", "Authentication failed")
	aliceWith([]string{"intkey-pass-2"}, "sign-data", "-o", c.path("intkey-2.sig"), "intkey", data)
	gpgVerify(t, env, c.path("intkey-2.sig"), data)
	aliceWith([]string{"intkey-pass-2"}, "change-key-expiration", "--expire-date", "2032-01-02", "intkey")
	pub2 := aliceWith([]string{"intkey-pass-2"}, "get-public-key", "intkey").stdout
	_, env2 := gpgHome(t, []byte(pub2))
	if exp := expiryDate(tool(t, "", env2, "gpg", "--batch", "--with-colons", "--list-keys")); exp != "2032-01-02" {
		t.Errorf("change-key-expiration --expire-date 2032-01-02: gpg sees the key expire on %q", exp)
	}
	fails(t, c.run(t, "", "alice", []string{"intkey-pass-2"}, "change-key-expiration", "--subkey", "1", "--expire-date", "2032-01-02", "intkey"),
		"change-key-expiration --subkey", "subkey")

	// Grants: admin gets access with a passphrase of its own, signs, is
	// made key administrator, and loses access again.
	aliceWith([]string{"intkey-pass-2", "admin-intkey-pass"}, "grant-key-access", "intkey", "admin")
	if r := aliceWith([]string{"intkey-pass-2"}, "list-key-users", "intkey"); !has(r, "admin") || !has(r, "alice") {
		t.Fatalf("list-key-users after grant-key-access: %v", r)
	}
	adminWith([]string{"admin-intkey-pass"}, "sign-data", "-o", c.path("intkey-admin.sig"), "intkey", data)
	gpgVerify(t, env, c.path("intkey-admin.sig"), data)
	adminOK("modify-key-user", "--key-admin", "yes", "admin", "intkey")
	if r := adminOK("key-user-info", "admin", "intkey"); !strings.Contains(r.stdout, "key administrator: yes") {
		t.Fatalf("key-user-info after modify-key-user --key-admin yes: %v", r)
	}
	adminOK("modify-key-user", "--key-admin", "no", "admin", "intkey")
	if r := adminOK("key-user-info", "admin", "intkey"); !strings.Contains(r.stdout, "key administrator: no") {
		t.Fatalf("key-user-info after modify-key-user --key-admin no: %v", r)
	}
	aliceWith([]string{"intkey-pass-2"}, "revoke-key-access", "intkey", "admin")
	if r := aliceWith([]string{"intkey-pass-2"}, "list-key-users", "intkey"); has(r, "admin") {
		t.Fatalf("list-key-users after revoke-key-access: %v", r)
	}
	fails(t, c.run(t, "", "admin", []string{"admin-intkey-pass"}, "sign-data", "-o", c.path("intkey-revoked.sig"), "intkey", data),
		"sign-data after revoke-key-access", "")
	// The administrator's password instead of a key passphrase.
	if r := adminOK("list-key-users", "--password", "intkey"); !has(r, "alice") {
		t.Fatalf("list-key-users --password: %v", r)
	}
	if r := adminOK("get-public-key", "--password", "intkey"); !strings.Contains(r.stdout, "BEGIN PGP PUBLIC KEY BLOCK") {
		t.Fatalf("get-public-key --password: %v", r)
	}
	aliceWith([]string{"intkey-pass-2", "bob-intkey-pass"}, "grant-key-access", "intkey", "intbob")
	adminOK("revoke-key-access", "--password", "intkey", "intbob")
	if r := adminOK("key-user-info", "intbob", "intkey"); !strings.Contains(r.stdout, "No access defined") {
		t.Fatalf("key-user-info after revoke-key-access --password: %v", r)
	}

	// import-key: a key gpg made, under a passphrase, imported for alice
	// under a new one; gpg verifies what it signs.
	gi, genv := gpgHome(t)
	tool(t, gi, genv, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "imported-secret",
		"--quick-gen-key", "Imported Key <imported@example.org>", "rsa2048", "sign", "never")
	secret := tool(t, gi, genv, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "imported-secret",
		"--armor", "--export-secret-keys")
	secFile := c.write(t, "imported.sec.asc", []byte(secret))
	adminWith([]string{c.s.adminPW, "imported-secret", "imported-new-pass"}, "import-key", "--key-admin", "alice", "intimported", secFile)
	os.Remove(secFile)
	aliceWith([]string{"imported-new-pass"}, "sign-data", "-o", c.path("imported.sig"), "intimported", data)
	gpgVerify(t, genv, c.path("imported.sig"), data)

	// Renaming and deleting keys and users.
	adminOK("modify-key", "--new-name", "intkeyrenamed", "intkey")
	if r := adminOK("list-keys"); !has(r, "intkeyrenamed (gnupg)") || has(r, "intkey (gnupg)") {
		t.Fatalf("list-keys after modify-key --new-name: %v", r)
	}
	aliceWith([]string{"intkey-pass-2"}, "sign-data", "-o", c.path("renamed.sig"), "intkeyrenamed", data)
	gpgVerify(t, env, c.path("renamed.sig"), data)
	adminOK("delete-key", "intkeyrenamed")
	adminOK("delete-key", "intimported")
	if r := adminOK("list-keys"); has(r, "intkeyrenamed (gnupg)") || has(r, "intimported (gnupg)") {
		t.Fatalf("list-keys after delete-key: %v", r)
	}
	adminOK("delete-user", "intbob")
	adminOK("delete-user", "intcarla")
	if r := adminOK("list-users"); has(r, "intbob") || has(r, "intcarla") || !has(r, "alice") {
		t.Fatalf("list-users after delete-user: %v", r)
	}
}

// testNewKeyExpiry: new-key --gnupg-expire-date gives the new key that
// expiry date, as Sigul's server does (gpg's Expire-Date).
func (c *sc) testNewKeyExpiry(t *testing.T) {
	needTools(t, "gpg")
	r := c.ok(t, c.run(t, "", "admin", []string{c.s.adminPW, "intexp-pass"}, "new-key", "--key-admin", "alice",
		"--gnupg-name-real", "Interop Expiring", "--gnupg-expire-date", "2031-05-06", "intexpiring"), "new-key")
	_, env := gpgHome(t, []byte(r.stdout))
	listing := tool(t, "", env, "gpg", "--batch", "--with-colons", "--list-keys")
	if exp := expiryDate(listing); exp != "2031-05-06" {
		t.Errorf("new-key --gnupg-expire-date 2031-05-06: gpg sees the key expire on %q:\n%s", exp, listing)
	}
	c.ok(t, c.admin(t, "delete-key", "intexpiring"), "delete-key")
}

// expiryDate returns the UTC date on which the first primary key in gpg
// --with-colons output expires (field 7 of its "pub" record), or "" if it
// does not.
func expiryDate(listing string) string {
	for _, l := range strings.Split(listing, "\n") {
		f := strings.Split(l, ":")
		if f[0] == "pub" && len(f) >= 7 && f[6] != "" {
			secs, err := strconv.ParseInt(f[6], 10, 64)
			if err != nil {
				return f[6]
			}
			return time.Unix(secs, 0).UTC().Format(time.DateOnly)
		}
	}
	return ""
}
