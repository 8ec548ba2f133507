package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
)

type opsFixture struct {
	t *testing.T
	h *server.Handlers
	a *server.Admin
}

func newOps(t *testing.T) *opsFixture {
	t.Helper()
	ctx := context.Background()
	a, _ := newAdmin(t)
	for _, u := range []struct {
		name  string
		admin bool
		pw    string
	}{{"root", true, "root pw"}, {"alice", false, ""}, {"bob", false, ""}} {
		var pw []byte
		if u.pw != "" {
			pw = []byte(u.pw)
		}
		if err := a.AddUser(ctx, u.name, u.admin, pw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "fedora", Type: hsm.Ed25519,
		UserIDs: []string{"Fedora <f@example.org>"}, Owner: "alice", OwnerPassphrase: []byte("alice pass")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "x509", Type: hsm.ECDSAP256, Owner: "alice", OwnerPassphrase: []byte("alice pass")}); err != nil {
		t.Fatal(err)
	}
	au, err := server.NewAuthenticator(a.Store, cheapKDF, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	au.PasswordCost = cheapPassword
	h := &server.Handlers{Store: a.Store, Token: a.Token, Auth: au, TokenName: a.TokenName, KDF: cheapKDF}
	return &opsFixture{t: t, h: h, a: a}
}

// do sends op as user (with a matching certificate CN) with the given
// outer fields and inner secrets, and returns the reply and its payload.
func (f *opsFixture) do(op, user string, fields, secrets map[string]string, payload []byte) (*server.Response, []byte) {
	f.t.Helper()
	r := &server.Request{Op: op, User: user, CN: user, Fields: map[string][]byte{}, Secrets: map[string][]byte{},
		Payload: bytes.NewReader(payload), PayloadSize: int64(len(payload))}
	for k, v := range fields {
		r.Fields[k] = []byte(v)
	}
	for k, v := range secrets {
		r.Secrets[k] = []byte(v)
	}
	resp, err := f.h.Serve(context.Background(), r)
	if err != nil {
		f.t.Fatalf("%s: %v", op, err)
	}
	body, err := io.ReadAll(resp.Payload)
	if err != nil {
		f.t.Fatal(err)
	}
	if int64(len(body)) != resp.PayloadSize {
		f.t.Fatalf("%s: payload is %d bytes, PayloadSize says %d", op, len(body), resp.PayloadSize)
	}
	return resp, body
}

// certInfo reads an armored OpenPGP certificate.
func certInfo(t *testing.T, armored []byte) *openpgp.CertificateInfo {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	info, err := openpgp.ParseCertificate(bin)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func (f *opsFixture) want(op string, resp *server.Response, status protocol.ErrorCode) {
	f.t.Helper()
	if resp.Status != status {
		f.t.Fatalf("%s: status %d, want %d", op, resp.Status, status)
	}
}

func field(resp *server.Response, key string) []byte {
	for _, fl := range resp.Fields {
		if fl.Key == key {
			return fl.Value
		}
	}
	return nil
}

var (
	rootPW     = map[string]string{"password": "root pw"}
	alicePass  = map[string]string{"passphrase": "alice pass"}
	wrongPW    = map[string]string{"password": "root pX"}
	noSecrets  = map[string]string{}
	bool1      = string([]byte{1})
	namesOf    = func(b []byte) string { return strings.ReplaceAll(string(b), "\x00", ",") }
	fieldsName = func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
)

func TestAdministrationOps(t *testing.T) {
	t.Parallel()
	f := newOps(t)
	resp, body := f.do("list-users", "root", nil, rootPW, nil)
	f.want("list-users", resp, protocol.CodeOK)
	if got := namesOf(body); got != "alice,bob,root," || string(field(resp, "num-users")) != "\x00\x00\x00\x03" {
		t.Fatalf("list-users = %q, num-users %x", got, field(resp, "num-users"))
	}
	for _, c := range []struct {
		op      string
		user    string
		fields  map[string]string
		secrets map[string]string
		want    protocol.ErrorCode
	}{
		{"list-users", "root", nil, wrongPW, protocol.CodeAuthenticationFailed},
		{"list-users", "alice", nil, map[string]string{"password": ""}, protocol.CodeAuthenticationFailed},
		{"list-users", "root", nil, noSecrets, protocol.CodeAuthenticationFailed},
		{"new-user", "root", fieldsName("name", "carol", "admin", bool1), map[string]string{"password": "root pw", "new-password": "carol pw"}, protocol.CodeOK},
		{"new-user", "root", fieldsName("name", "carol"), rootPW, protocol.CodeAlreadyExists},
		{"user-info", "root", fieldsName("name", "nobody"), rootPW, protocol.CodeUserNotFound},
		{"delete-user", "root", fieldsName("name", "alice"), rootPW, protocol.CodeUserHasKeyAccesses},
		{"key-user-info", "root", fieldsName("name", "nobody", "key", "nokey"), rootPW, protocol.CodeUserNotFound},
		{"key-user-info", "root", fieldsName("name", "bob", "key", "nokey"), rootPW, protocol.CodeKeyNotFound},
		{"key-user-info", "root", fieldsName("name", "bob", "key", "fedora"), rootPW, protocol.CodeKeyUserNotFound},
		{"modify-user", "root", fieldsName("name", "bob", "new-name", "carol"), rootPW, protocol.CodeAlreadyExists},
		{"revoke-key-access", "root", fieldsName("key", "fedora", "name", "alice"), rootPW, protocol.CodeOnlyOneKeyUser},
		{"delete-key", "root", fieldsName("key", "nokey"), rootPW, protocol.CodeKeyNotFound},
		{"no-such-op", "root", nil, rootPW, protocol.CodeUnknownOp},
	} {
		resp, _ := f.do(c.op, c.user, c.fields, c.secrets, nil)
		if resp.Status != c.want {
			t.Errorf("%s %v: status %d, want %d", c.op, c.fields, resp.Status, c.want)
		}
		if resp.Status == protocol.CodeAuthenticationFailed && len(resp.Fields) != 0 {
			t.Errorf("%s: AUTHENTICATION_FAILED carries fields %v", c.op, resp.Fields)
		}
	}
	// The new administrator can administer.
	resp, _ = f.do("user-info", "carol", fieldsName("name", "carol"), map[string]string{"password": "carol pw"}, nil)
	f.want("user-info as carol", resp, protocol.CodeOK)
	if !bytes.Equal(field(resp, "admin"), []byte{1}) {
		t.Fatalf("carol's admin field = %x", field(resp, "admin"))
	}
	// Grant bob, make him key admin, check, then clean up.
	if err := f.a.Grant(context.Background(), "fedora", "bob", []byte("bob pass"), false); err != nil {
		t.Fatal(err)
	}
	resp, _ = f.do("modify-key-user", "root", fieldsName("name", "bob", "key", "fedora", "key-admin", bool1), rootPW, nil)
	f.want("modify-key-user", resp, protocol.CodeOK)
	resp, _ = f.do("key-user-info", "root", fieldsName("name", "bob", "key", "fedora"), rootPW, nil)
	f.want("key-user-info", resp, protocol.CodeOK)
	if !bytes.Equal(field(resp, "key-admin"), []byte{1}) {
		t.Fatalf("bob's key-admin = %x", field(resp, "key-admin"))
	}
	resp, _ = f.do("modify-user", "root", fieldsName("name", "carol", "new-name", "dave", "admin", string([]byte{0})), rootPW, nil)
	f.want("modify-user", resp, protocol.CodeOK)
	resp, _ = f.do("user-info", "root", fieldsName("name", "dave"), rootPW, nil)
	if resp.Status != protocol.CodeOK || !bytes.Equal(field(resp, "admin"), []byte{0}) {
		t.Fatalf("dave after modify-user: %d %x", resp.Status, field(resp, "admin"))
	}
	resp, _ = f.do("delete-user", "root", fieldsName("name", "dave"), rootPW, nil)
	f.want("delete-user", resp, protocol.CodeOK)
	bad := &server.Request{Op: "new-user", User: "root", CN: "root", Fields: map[string][]byte{"name": []byte("eve"), "admin": []byte("yes")},
		Secrets: map[string][]byte{"password": []byte("root pw")}, Payload: bytes.NewReader(nil)}
	if _, err := f.h.Serve(context.Background(), bad); !errors.Is(err, server.ErrDrop) {
		t.Fatalf("a bool field of 3 bytes: err = %v, want ErrDrop (no reply)", err)
	}

	resp, body = f.do("list-keys", "root", nil, rootPW, nil)
	f.want("list-keys", resp, protocol.CodeOK)
	if got := namesOf(body); got != "fedora (gnupg),x509 (ECC)," {
		t.Fatalf("list-keys = %q", got)
	}
	// A certificate whose CN is not the user: refused like a bad password.
	r := &server.Request{Op: "list-users", User: "root", CN: "alice", Fields: map[string][]byte{},
		Secrets: map[string][]byte{"password": []byte("root pw")}, Payload: bytes.NewReader(nil)}
	if resp, err := f.h.Serve(context.Background(), r); err != nil || resp.Status != protocol.CodeAuthenticationFailed {
		t.Fatalf("CN alice acting as root: %v, %v", resp, err)
	}
	if n, err := f.a.Store.VerifyAudit(context.Background()); err != nil || n < 20 {
		t.Fatalf("audit: %d records, %v", n, err)
	}
}

func TestKeyOps(t *testing.T) {
	t.Parallel()
	f := newOps(t)
	// alice (key admin) grants bob; bob signs; bob cannot grant.
	resp, _ := f.do("grant-key-access", "alice", fieldsName("key", "fedora", "name", "bob"),
		map[string]string{"passphrase": "alice pass", "new-passphrase": "bob pass"}, nil)
	f.want("grant-key-access", resp, protocol.CodeOK)
	resp, _ = f.do("grant-key-access", "alice", fieldsName("key", "fedora", "name", "bob"),
		map[string]string{"passphrase": "alice pass", "new-passphrase": "bob pass"}, nil)
	f.want("grant-key-access twice", resp, protocol.CodeAlreadyExists)
	resp, _ = f.do("grant-key-access", "bob", fieldsName("key", "fedora", "name", "root"),
		map[string]string{"passphrase": "bob pass", "new-passphrase": "x"}, nil)
	f.want("grant-key-access by a plain user", resp, protocol.CodeAuthenticationFailed)

	resp, users := f.do("list-key-users", "alice", fieldsName("key", "fedora"), alicePass, nil)
	f.want("list-key-users", resp, protocol.CodeOK)
	if namesOf(users) != "alice,bob," {
		t.Fatalf("list-key-users = %q", namesOf(users))
	}

	data := []byte("signet sign-data payload\n")
	resp, sig := f.do("sign-data", "bob", fieldsName("key", "fedora", "armor", bool1), map[string]string{"passphrase": "bob pass"}, data)
	f.want("sign-data", resp, protocol.CodeOK)
	resp, cert := f.do("get-public-key", "bob", fieldsName("key", "fedora"), map[string]string{"passphrase": "bob pass"}, nil)
	f.want("get-public-key", resp, protocol.CodeOK)
	gpgVerify(t, cert, sig, data)

	text := []byte("Release notes\n- first item\nFrom here on\n")
	resp, clear := f.do("sign-text", "bob", fieldsName("key", "fedora"), map[string]string{"passphrase": "bob pass"}, text)
	f.want("sign-text", resp, protocol.CodeOK)
	gpgVerify(t, cert, clear, nil)
	resp, _ = f.do("sign-text", "bob", fieldsName("key", "fedora"), map[string]string{"passphrase": "bob pass"}, []byte("bin\x00ary"))
	f.want("sign-text of binary data", resp, protocol.CodeUnknownError)
	if !strings.Contains(string(field(resp, "message")), "line 1") {
		t.Fatalf("sign-text of binary data: message %q", field(resp, "message"))
	}

	resp, _ = f.do("sign-data", "bob", fieldsName("key", "fedora"), map[string]string{"passphrase": "wrong"}, data)
	f.want("sign-data with a wrong passphrase", resp, protocol.CodeAuthenticationFailed)
	resp, _ = f.do("sign-data", "bob", fieldsName("key", "nokey"), map[string]string{"passphrase": "bob pass"}, data)
	f.want("sign-data with an unknown key", resp, protocol.CodeAuthenticationFailed)
	resp, _ = f.do("sign-data", "alice", fieldsName("key", "x509"), alicePass, data)
	f.want("sign-data with an X.509-only key", resp, protocol.CodeUnsupportedKeytype)
	resp, pemKey := f.do("get-public-key", "root", fieldsName("key", "x509"), rootPW, nil)
	f.want("get-public-key as admin", resp, protocol.CodeOK)
	if !bytes.HasPrefix(pemKey, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("get-public-key x509 = %q", pemKey)
	}

	// change-passphrase: the old one stops working, the new one works.
	resp, _ = f.do("change-passphrase", "bob", fieldsName("key", "fedora"), map[string]string{"passphrase": "bob pass", "new-passphrase": "bob new"}, nil)
	f.want("change-passphrase", resp, protocol.CodeOK)
	resp, _ = f.do("sign-data", "bob", fieldsName("key", "fedora"), map[string]string{"passphrase": "bob pass"}, data)
	f.want("sign-data with the old passphrase", resp, protocol.CodeAuthenticationFailed)
	resp, _ = f.do("sign-data", "bob", fieldsName("key", "fedora"), map[string]string{"passphrase": "bob new"}, data)
	f.want("sign-data with the new passphrase", resp, protocol.CodeOK)

	// change-key-expiration: key admins only; the certificate gets the date.
	resp, _ = f.do("change-key-expiration", "bob", fieldsName("key", "fedora", "expire-date", "2031-01-02"), map[string]string{"passphrase": "bob new"}, nil)
	f.want("change-key-expiration by a plain user", resp, protocol.CodeAuthenticationFailed)
	resp, _ = f.do("change-key-expiration", "alice", fieldsName("key", "fedora", "expire-date", "2031-01-02"), alicePass, nil)
	f.want("change-key-expiration", resp, protocol.CodeOK)
	resp, _ = f.do("change-key-expiration", "alice", fieldsName("key", "x509"), alicePass, nil)
	f.want("change-key-expiration of an X.509 key", resp, protocol.CodeUnsupportedKeytype)
	k, _ := f.a.Store.GetKey(context.Background(), "fedora")
	if info, err := openpgp.ParseCertificate(k.PGPCertificate); err != nil || info.Expires.Format(time.DateOnly) != "2031-01-02" || len(info.UserIDs) != 1 {
		t.Fatalf("certificate after change-key-expiration: %+v, %v", info, err)
	}

	// Renaming the key keeps every grant.
	resp, _ = f.do("modify-key", "root", fieldsName("key", "fedora", "new-name", "fedora-43"), rootPW, nil)
	f.want("modify-key", resp, protocol.CodeOK)
	resp, _ = f.do("sign-data", "bob", fieldsName("key", "fedora-43"), map[string]string{"passphrase": "bob new"}, data)
	f.want("sign-data after a rename", resp, protocol.CodeOK)

	// revoke: bob loses access; a revoked user is refused like anyone else.
	resp, _ = f.do("revoke-key-access", "alice", fieldsName("key", "fedora-43", "name", "bob"), alicePass, nil)
	f.want("revoke-key-access", resp, protocol.CodeOK)
	resp, _ = f.do("sign-data", "bob", fieldsName("key", "fedora-43"), map[string]string{"passphrase": "bob new"}, data)
	f.want("sign-data after revocation", resp, protocol.CodeAuthenticationFailed)

	resp, _ = f.do("delete-key", "root", fieldsName("key", "x509"), rootPW, nil)
	f.want("delete-key", resp, protocol.CodeOK)
	if _, err := f.a.Token.FindKey(nil, "x509"); err == nil {
		t.Fatal("delete-key left the key in the token")
	}
}

// gpgVerify checks an armored detached signature over data, or a cleartext
// signed message when data is nil, with gpg in a throwaway home.
func gpgVerify(t *testing.T, cert, sig, data []byte) {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"cert.asc": cert, "data": data, "data.asc": sig} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) error {
		cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: out}
		}
		return nil
	}
	defer exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	if err := run("--import", "cert.asc"); err != nil {
		t.Fatalf("gpg --import: %s", err.(*exec.ExitError).Stderr)
	}
	if data == nil { // a cleartext signed message
		if err := run("--verify", "data.asc"); err != nil {
			t.Fatalf("gpg --verify: %s", err.(*exec.ExitError).Stderr)
		}
		os.WriteFile(filepath.Join(dir, "data.asc"), bytes.Replace(sig, []byte("item"), []byte("itEm"), 1), 0o600)
		if err := run("--verify", "data.asc"); err == nil {
			t.Fatal("gpg accepted a changed cleartext message")
		}
		return
	}
	if err := run("--verify", "data.asc", "data"); err != nil {
		t.Fatalf("gpg --verify: %s", err.(*exec.ExitError).Stderr)
	}
	os.WriteFile(filepath.Join(dir, "data"), append(data, '!'), 0o600)
	if err := run("--verify", "data.asc", "data"); err == nil {
		t.Fatal("gpg accepted the signature over changed data")
	}
}

func TestNewAndImportKey(t *testing.T) {
	t.Parallel()
	f := newOps(t)
	newKey := fieldsName("key", "k43", "keytype", "gnupg", "name-real", "Fedora 43", "name-email", "f43@example.org")
	secrets := map[string]string{"password": "root pw", "passphrase": "root key pass"}
	resp, _ := f.do("new-key", "root", newKey, secrets, nil)
	f.want("new-key without a server PIN", resp, protocol.CodeUnknownError)
	if msg := string(field(resp, "message")); !strings.Contains(msg, "signet-server key generate") {
		t.Fatalf("new-key without a PIN: message %q does not point to the ceremony command", msg)
	}
	f.h.PIN = f.a.PIN
	resp, cert := f.do("new-key", "root", newKey, secrets, nil)
	f.want("new-key", resp, protocol.CodeOK)
	if !bytes.HasPrefix(cert, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		t.Fatalf("new-key payload = %q", cert)
	}
	resp, _ = f.do("new-key", "root", newKey, secrets, nil)
	f.want("new-key twice", resp, protocol.CodeAlreadyExists)
	resp, _ = f.do("new-key", "root", fieldsName("key", "k2", "keytype", "DSA"), secrets, nil)
	f.want("new-key of an unknown type", resp, protocol.CodeUnsupportedKeytype)
	// expire-date (Sigul's --gnupg-expire-date) is the key's expiry.
	resp, expiring := f.do("new-key", "root", fieldsName("key", "k44", "keytype", "gnupg", "name-real", "Fedora 44", "expire-date", "2031-05-06"), secrets, nil)
	f.want("new-key with expire-date", resp, protocol.CodeOK)
	if info := certInfo(t, expiring); !info.Expires.Equal(time.Date(2031, 5, 6, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("new-key with expire-date 2031-05-06: the certificate expires %v", info.Expires)
	}
	if info := certInfo(t, cert); !info.Expires.IsZero() {
		t.Fatalf("new-key without expire-date: the certificate expires %v", info.Expires)
	}
	badDate := &server.Request{Op: "new-key", User: "root", CN: "root", Payload: bytes.NewReader(nil),
		Fields:  map[string][]byte{"key": []byte("k45"), "keytype": []byte("gnupg"), "name-real": []byte("x"), "expire-date": []byte("2031-13-01")},
		Secrets: map[string][]byte{"password": []byte("root pw"), "passphrase": []byte("root key pass")}}
	if _, err := f.h.Serve(context.Background(), badDate); !errors.Is(err, server.ErrDrop) {
		t.Fatalf("new-key with expire-date 2031-13-01: err = %v, want ErrDrop", err)
	}
	data := []byte("data")
	resp, sig := f.do("sign-data", "root", fieldsName("key", "k43", "armor", bool1), map[string]string{"passphrase": "root key pass"}, data)
	f.want("sign-data with the new key", resp, protocol.CodeOK)
	gpgVerify(t, cert, sig, data)

	// import-key of a gpg export, protected by a passphrase.
	home := t.TempDir()
	testenv.ShortGPGAgent(t, home)
	gpg := func(args ...string) []byte {
		out, err := exec.Command("gpg", append([]string{"--batch", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", "gpg pass"}, args...)...).Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	defer exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	gpg("--quick-gen-key", "Old Key <old@example.org>", "ed25519", "sign", "never")
	sec := gpg("--armor", "--export-secret-keys", "old@example.org")
	imp := fieldsName("key", "old", "keytype", "gnupg")
	resp, _ = f.do("import-key", "root", imp, map[string]string{"password": "root pw", "passphrase": "not it", "new-passphrase": "np"}, sec)
	f.want("import-key with a wrong passphrase", resp, protocol.CodeImportPassphraseError)
	resp, _ = f.do("import-key", "root", imp, map[string]string{"password": "root pw", "passphrase": "", "new-passphrase": "np"}, []byte("garbage"))
	f.want("import-key of garbage", resp, protocol.CodeInvalidImport)
	resp, _ = f.do("import-key", "root", imp, map[string]string{"password": "root pw", "passphrase": "gpg pass", "new-passphrase": "np"}, sec)
	f.want("import-key", resp, protocol.CodeOK)
	fpr := string(gpg("--with-colons", "--fingerprint", "old@example.org"))
	k, err := f.a.Store.GetKey(context.Background(), "old")
	if err != nil || !strings.Contains(fpr, ":"+k.Fingerprint+":") {
		t.Fatalf("imported key fingerprint %s not in gpg's %q (%v)", k.Fingerprint, fpr, err)
	}
	resp, _ = f.do("sign-data", "root", fieldsName("key", "old"), map[string]string{"passphrase": "np"}, data)
	f.want("sign-data with the imported key", resp, protocol.CodeOK)
}

// TestDeleteKeyChecksTheTokenKey: network delete-key destroys the token
// object only when it holds the public key the database has. An object id
// is only a label: a different key under the same id (a token restored or
// reused) is refused and left in the token.
func TestDeleteKeyChecksTheTokenKey(t *testing.T) {
	t.Parallel()
	f := newOps(t)
	ctx := context.Background()
	rootPW := map[string]string{"password": "root pw"}
	k, err := f.a.Store.GetKey(ctx, "x509")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.a.Token.DeleteKey(k.ObjectID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Token.GenerateKey(hsm.GenerateRequest{Type: hsm.ECDSAP256, Label: "someone else", ID: k.ObjectID}); err != nil {
		t.Fatal(err)
	}
	resp, _ := f.do("delete-key", "root", fieldsName("key", "x509"), rootPW, nil)
	if resp.Status == protocol.CodeOK {
		t.Fatal("delete-key destroyed a token object whose public key differs from the database's")
	}
	if _, err := f.a.Token.FindKey(k.ObjectID, ""); err != nil {
		t.Fatalf("the other key is gone from the token: %v", err)
	}
	if _, err := f.a.Store.GetKey(ctx, "x509"); err != nil {
		t.Fatalf("the refused delete-key removed the database row: %v", err)
	}

	// A key whose object is gone leaves only its row to remove.
	if err := f.a.Token.DeleteKey(k.ObjectID, ""); err != nil {
		t.Fatal(err)
	}
	resp, _ = f.do("delete-key", "root", fieldsName("key", "x509"), rootPW, nil)
	f.want("delete-key of a key missing from the token", resp, protocol.CodeOK)
	if _, err := f.a.Store.GetKey(ctx, "x509"); err == nil {
		t.Fatal("delete-key left the row of a key missing from the token")
	}
}

// TestStalePINIsAnAuthenticationFailure: an access row whose wrapped PIN
// is not the token's (wrapped before a PIN change) is refused as
// AUTHENTICATION_FAILED, and users with good rows keep signing.
func TestStalePINIsAnAuthenticationFailure(t *testing.T) {
	t.Parallel()
	f := newOps(t)
	ctx := context.Background()
	k, err := f.a.Store.GetKey(ctx, "fedora")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := f.a.Store.GetUser(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	stale := append(bytes.Clone(f.a.PIN), '9')
	w, err := hsm.WrapPIN(stale, []byte("bob pass"), server.AccessBinding(k, bob.ID), cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Store.Grant(ctx, "fedora", "bob", w, false); err != nil {
		t.Fatal(err)
	}
	data := []byte("payload\n")
	alice := map[string]string{"passphrase": "alice pass"}
	resp, _ := f.do("sign-data", "alice", fieldsName("key", "fedora"), alice, data)
	f.want("sign-data by alice", resp, protocol.CodeOK)
	resp, _ = f.do("sign-data", "bob", fieldsName("key", "fedora"), map[string]string{"passphrase": "bob pass"}, data)
	f.want("sign-data with a stale wrapped PIN", resp, protocol.CodeAuthenticationFailed)
	resp, _ = f.do("sign-data", "alice", fieldsName("key", "fedora"), alice, data)
	f.want("sign-data by alice after bob's stale PIN", resp, protocol.CodeOK)
}

// TestPasswordCostDefault checks that what the tests lower is not lowered
// in production: a zero PasswordCost, in the ceremony and in new-user,
// stores hashes at store.DefaultArgon2Params().
func TestPasswordCostDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newOps(t)
	p := store.DefaultArgon2Params()
	want := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", p.MemoryKiB, p.Time, p.Threads)
	hashOf := func(name string) string {
		t.Helper()
		u, err := f.a.Store.GetUser(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return u.PasswordHash
	}
	if h := hashOf("root"); strings.HasPrefix(h, want) {
		t.Fatalf("the fixture's hash %q is at the default cost: the test checks nothing", h)
	}
	f.a.PasswordCost = store.Argon2Params{}
	if err := f.a.AddUser(ctx, "carol", true, []byte("carol pw")); err != nil {
		t.Fatal(err)
	}
	if h := hashOf("carol"); !strings.HasPrefix(h, want) {
		t.Errorf("ceremony user-add with a zero PasswordCost stored %q, want the prefix %q", h, want)
	}
	f.h.Auth.PasswordCost = store.Argon2Params{}
	resp, _ := f.do("new-user", "root", fieldsName("name", "dave", "admin", bool1), map[string]string{"password": "root pw", "new-password": "dave pw"}, nil)
	f.want("new-user", resp, protocol.CodeOK)
	if h := hashOf("dave"); !strings.HasPrefix(h, want) {
		t.Errorf("new-user with a zero PasswordCost stored %q, want the prefix %q", h, want)
	}
}
