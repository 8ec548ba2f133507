package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/protocol"

	"github.com/signet-project/signet/internal/servertest"
)

func newClient(t *testing.T, e *servertest.Env, user string) *client.Client {
	t.Helper()
	c, err := client.New(e.Config(user))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	os.WriteFile(path, []byte("bridge-hostname = \"top\"\n[client]\nbridge-hostname = \"b.example\"\nserver-hostname = \"s.example\"\n"+
		"ca-file = \"ca.pem\"\nclient-cert-file = \"/abs/c.pem\"\nclient-key-file = \"c.key\"\n"), 0o600)
	c, err := client.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := client.Config{BridgeHost: "b.example", BridgePort: client.DefaultBridgePort, ServerHost: "s.example",
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: "/abs/c.pem", KeyFile: filepath.Join(dir, "c.key")}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("LoadConfig = %+v, want %+v", *c, want)
	}
	// A list of bridges, with or without bridge-hostname.
	os.WriteFile(path, []byte("[client]\nbridge-hostname = \"b.example\"\nbridge-port = 4000\nbridges = [\"c.example\", \"d.example:5000\"]\n"), 0o600)
	if c, err = client.LoadConfig(path); err != nil {
		t.Fatal(err)
	}
	if l, err := c.BridgeAddrs(); err != nil || fmt.Sprint(l) != "[b.example:4000 c.example:4000 d.example:5000]" {
		t.Fatalf("BridgeAddrs = %v, %v", l, err)
	}
	c.BridgeHost = ""
	if l, err := c.BridgeAddrs(); err != nil || fmt.Sprint(l) != "[c.example:4000 d.example:5000]" {
		t.Fatalf("BridgeAddrs without bridge-hostname = %v, %v", l, err)
	}
	c.Bridges = []string{"d.example:x"}
	if _, err := c.BridgeAddrs(); err == nil || !strings.Contains(err.Error(), "d.example:x") {
		t.Fatalf("a bad port: %v", err)
	}
	c.Bridges = nil
	if _, err := c.BridgeAddrs(); err == nil {
		t.Fatal("no bridge at all was accepted")
	}
	os.WriteFile(path, []byte("[client]\nbridge-hostnme = \"typo\"\n"), 0o600)
	if _, err := client.LoadConfig(path); err == nil || !strings.Contains(err.Error(), "bridge-hostnme") {
		t.Fatalf("unknown key: err = %v", err)
	}
}

func TestAdminOperations(t *testing.T) {
	e := servertest.New(t)
	ctx := ctxT(t)
	root := newClient(t, e, "root")

	users, err := root.ListUsers(ctx, []byte(servertest.RootPW))
	if err != nil || !slices.Equal(users, []string{"alice", "bob", "root"}) {
		t.Fatalf("ListUsers = %q, %v", users, err)
	}
	keys, err := root.ListKeys(ctx, []byte(servertest.RootPW))
	if err != nil || len(keys) != 1 || !strings.HasPrefix(keys[0], "fedora (") {
		t.Fatalf("ListKeys = %q, %v", keys, err)
	}
	pw := []byte("carol pw")
	if err := root.NewUser(ctx, client.NewUserRequest{Name: "carol", Admin: true, Password: []byte(servertest.RootPW), NewPassword: pw}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pw, make([]byte, len(pw))) {
		t.Fatal("NewUser did not zero the new password")
	}
	err = root.NewUser(ctx, client.NewUserRequest{Name: "carol", Password: []byte(servertest.RootPW)})
	if code, ok := client.CodeOf(err); !ok || code != protocol.CodeAlreadyExists {
		t.Fatalf("second new-user carol: %v", err)
	}
	// carol is an administrator with her password.
	carol := newClient(t, e, "carol")
	for name, want := range map[string]bool{"carol": true, "alice": false} {
		admin, err := carol.UserInfo(ctx, client.UserInfoRequest{Name: name, Password: []byte("carol pw")})
		if err != nil || admin != want {
			t.Fatalf("UserInfo(%s) = %v, %v", name, admin, err)
		}
	}
	if _, err := root.UserInfo(ctx, client.UserInfoRequest{Name: "nobody", Password: []byte(servertest.RootPW)}); !errors.Is(err, &client.Error{Code: protocol.CodeUserNotFound}) {
		t.Fatalf("UserInfo(nobody): %v", err)
	}
	access, keyAdmin, err := root.KeyUserInfo(ctx, client.KeyUserInfoRequest{User: "alice", Key: "fedora", Password: []byte(servertest.RootPW)})
	if err != nil || !access || !keyAdmin {
		t.Fatalf("KeyUserInfo(alice) = %v %v %v", access, keyAdmin, err)
	}
	access, _, err = root.KeyUserInfo(ctx, client.KeyUserInfoRequest{User: "bob", Key: "fedora", Password: []byte(servertest.RootPW)})
	if err != nil || access {
		t.Fatalf("KeyUserInfo(bob) = %v %v", access, err)
	}
	// A wrong password.
	_, err = root.ListUsers(ctx, []byte("wrong"))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != protocol.CodeAuthenticationFailed ||
		err.Error() != "Authentication failed (AUTHENTICATION_FAILED)" {
		t.Fatalf("wrong password: %v", err)
	}
	if errors.Is(err, client.ErrIntegrity) {
		t.Fatal("an error reply is not an integrity failure")
	}
}

func TestGrantAndSign(t *testing.T) {
	e := servertest.New(t)
	ctx := ctxT(t)
	alice, bob := newClient(t, e, "alice"), newClient(t, e, "bob")
	if err := alice.GrantKeyAccess(ctx, client.GrantKeyAccessRequest{Key: "fedora", User: "bob", Passphrase: []byte(servertest.AlicePass), NewPassphrase: []byte("bob pass")}); err != nil {
		t.Fatal(err)
	}
	users, err := alice.ListKeyUsers(ctx, client.ListKeyUsersRequest{Key: "fedora", Auth: client.Auth{Passphrase: []byte(servertest.AlicePass)}})
	if err != nil || !slices.Equal(users, []string{"alice", "bob"}) {
		t.Fatalf("ListKeyUsers = %q, %v", users, err)
	}
	var cert bytes.Buffer
	if err := bob.GetPublicKey(ctx, client.GetPublicKeyRequest{Key: "fedora", Auth: client.Auth{Passphrase: []byte("bob pass")}}, &cert); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(cert.Bytes(), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		t.Fatalf("public key: %q", cert.Bytes())
	}
	dir := t.TempDir()
	data := bytes.Repeat([]byte("signet data\x00\xff"), 100000) // 1.3 MB, several chunks
	for _, armor := range []bool{false, true} {
		out := filepath.Join(dir, "sig")
		pass := []byte("bob pass")
		err := client.WriteFileAtomic(out, 0o644, func(w io.Writer) error {
			return bob.SignData(ctx, client.SignDataRequest{Key: "fedora", Armor: armor, Passphrase: pass, In: bytes.NewReader(data), Size: int64(len(data))}, w)
		})
		if err != nil {
			t.Fatalf("SignData armor=%v: %v", armor, err)
		}
		if !bytes.Equal(pass, make([]byte, len(pass))) {
			t.Fatal("SignData did not zero the passphrase")
		}
		sig, _ := os.ReadFile(out)
		if armored := bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----")); armored != armor {
			t.Fatalf("armor=%v but signature starts %q", armor, sig[:min(len(sig), 30)])
		}
		servertest.GPGVerify(t, cert.Bytes(), sig, data)
	}
	text := []byte("signet signs this text\nsecond line\n")
	var clear bytes.Buffer
	if err := bob.SignText(ctx, client.SignTextRequest{Key: "fedora", Passphrase: []byte("bob pass"), In: bytes.NewReader(text), Size: int64(len(text))}, &clear); err != nil {
		t.Fatal(err)
	}
	servertest.GPGVerify(t, cert.Bytes(), clear.Bytes(), nil)

	if err := alice.RevokeKeyAccess(ctx, client.RevokeKeyAccessRequest{Key: "fedora", User: "bob", Auth: client.Auth{Passphrase: []byte(servertest.AlicePass)}}); err != nil {
		t.Fatal(err)
	}
	err = bob.SignData(ctx, client.SignDataRequest{Key: "fedora", Passphrase: []byte("bob pass"), In: bytes.NewReader(data), Size: int64(len(data))}, io.Discard)
	if code, _ := client.CodeOf(err); code != protocol.CodeAuthenticationFailed {
		t.Fatalf("sign-data after revoke: %v", err)
	}
}

// TestFailuresLeaveNoFile: a wrong passphrase, a reply header changed on
// its way and a payload changed on its way all fail, and none leaves an
// output file.
func TestFailuresLeaveNoFile(t *testing.T) {
	e := servertest.New(t)
	ctx := ctxT(t)
	alice := newClient(t, e, "alice")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.sig")
	data := []byte("some data")
	sign := func() error {
		return client.WriteFileAtomic(out, 0o644, func(w io.Writer) error {
			return alice.SignData(ctx, client.SignDataRequest{Key: "fedora", Armor: true, Passphrase: []byte(servertest.AlicePass + "x"[:0]), In: bytes.NewReader(data), Size: int64(len(data))}, w)
		})
	}
	// Control: it works and the file appears; remove it again.
	if err := sign(); err != nil {
		t.Fatal(err)
	}
	os.Remove(out)

	err := client.WriteFileAtomic(out, 0o644, func(w io.Writer) error {
		return alice.SignData(ctx, client.SignDataRequest{Key: "fedora", Armor: true, Passphrase: []byte("wrong"), In: bytes.NewReader(data), Size: int64(len(data))}, w)
	})
	if code, ok := client.CodeOf(err); !ok || code != protocol.CodeAuthenticationFailed {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if n := servertest.DirNames(t, dir); len(n) != 0 {
		t.Fatalf("files left after an error reply: %q", n)
	}

	// sign-data's reply: code (4), empty field block (1), MAC (64), length
	// (8), then the payload.
	for name, at := range map[string]int64{"header code": 2, "header MAC": 30, "payload": 4 + 1 + 64 + 8 + 5} {
		e.Relay.SetTamper(servertest.FlipAt(at))
		err := sign()
		e.Relay.SetTamper(nil)
		if !errors.Is(err, client.ErrIntegrity) {
			t.Fatalf("%s changed: err = %v, want ErrIntegrity", name, err)
		}
		if _, ok := client.CodeOf(err); ok {
			t.Fatalf("%s changed: integrity failure reported as a Sigul code: %v", name, err)
		}
		if n := servertest.DirNames(t, dir); len(n) != 0 {
			t.Fatalf("%s changed: files left: %q", name, n)
		}
	}
	// A request payload changed on its way: the server's hash check fails
	// and it drops the request; the client gets no reply and writes nothing.
	big := bytes.Repeat([]byte("x"), 100000)
	e.Relay.SetTamperUp(servertest.FlipAt(50000)) // inside the payload: the header is far shorter
	err = client.WriteFileAtomic(out, 0o644, func(w io.Writer) error {
		return alice.SignData(ctx, client.SignDataRequest{Key: "fedora", Armor: true, Passphrase: []byte(servertest.AlicePass), In: bytes.NewReader(big), Size: int64(len(big))}, w)
	})
	e.Relay.SetTamperUp(nil)
	if !errors.Is(err, client.ErrNoReply) {
		t.Fatalf("request payload changed: err = %v, want ErrNoReply", err)
	}
	if n := servertest.DirNames(t, dir); len(n) != 0 {
		t.Fatalf("request payload changed: files left: %q", n)
	}
	// The relay is transparent again.
	if err := sign(); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedBeforeSending(t *testing.T) {
	e := servertest.New(t)
	c := newClient(t, e, "root")
	// A field the bridge would refuse (not a safe string) is refused here.
	if err := c.DeleteUser(ctxT(t), client.DeleteUserRequest{Name: "bad\nname", Password: []byte(servertest.RootPW)}); err == nil {
		t.Fatal("an unsafe user name was sent")
	}
	if _, err := c.Do(ctxT(t), &client.Request{Op: "no-such-op"}, nil); !errors.Is(err, protocol.ErrUnknownOp) {
		t.Fatalf("unknown op: %v", err)
	}
}
