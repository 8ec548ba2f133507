package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Main(m)) }

// cheapKDF is a small Argon2id cost for wrapped PINs (hsm.DefaultKDF() is
// 64 MiB and three passes); the tests compare costs, never time them.
var cheapKDF = hsm.KDFParams{Time: 1, MemoryKiB: 256, Threads: 1}

// cheapPassword is the smallest Argon2id cost the store accepts for
// password hashes; TestPasswordCostDefault checks what production uses.
var cheapPassword = store.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

func newAdmin(t *testing.T) (*server.Admin, *bytes.Buffer) {
	t.Helper()
	tk := softhsmtest.New(t)
	tok := tk.Open(t)
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "signet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var transcript bytes.Buffer
	return &server.Admin{Store: st, Token: tok, TokenName: tk.Label, PIN: tk.PIN, KDF: cheapKDF,
		PasswordCost: cheapPassword, Actor: "tester@host", Transcript: &transcript}, &transcript
}

func TestGenerateGrantUnwrap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, transcript := newAdmin(t)
	if err := a.AddUser(ctx, "releng", false, nil); err != nil {
		t.Fatal(err)
	}
	k, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "fedora", Type: hsm.Ed25519,
		UserIDs: []string{"Fedora <f@example.org>"}, Owner: "releng", OwnerPassphrase: []byte("pass one")})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Fingerprint) != 40 || len(k.PGPCertificate) == 0 || k.PGPCreated.IsZero() {
		t.Fatalf("stored key lacks OpenPGP data: %+v", k)
	}
	acc, err := a.Store.GetAccess(ctx, "fedora", "releng")
	if err != nil || !acc.KeyAdmin {
		t.Fatalf("owner access = %+v, %v; want a key-admin access", acc, err)
	}
	b := server.AccessBinding(k, acc.UserID)
	pin, err := hsm.UnwrapPIN(acc.WrappedPIN, []byte("pass one"), b)
	if err != nil || !bytes.Equal(pin, a.PIN) {
		t.Fatalf("the owner's passphrase does not unwrap the token PIN: %v", err)
	}
	if _, err := hsm.UnwrapPIN(acc.WrappedPIN, []byte("pass two"), b); !errors.Is(err, hsm.ErrBadPassphrase) {
		t.Fatalf("wrong passphrase: err = %v", err)
	}
	if _, err := hsm.UnwrapPIN(acc.WrappedPIN, []byte("pass one"), server.AccessBinding(k, acc.UserID+1)); !errors.Is(err, hsm.ErrBadPassphrase) {
		t.Fatalf("another user's binding: err = %v", err)
	}
	// The OpenPGP certificate keeps the key's creation time when remade.
	if _, err := a.OpenPGPCertificate(ctx, "fedora", []string{"Fedora 2 <f2@example.org>"}); err != nil {
		t.Fatal(err)
	}
	again, _ := a.Store.GetKey(ctx, "fedora")
	if again.Fingerprint != k.Fingerprint || !again.PGPCreated.Equal(k.PGPCreated) {
		t.Fatal("re-exporting the certificate changed the key's identity")
	}
	sig, err := a.SignFile(ctx, "fedora", []byte("data"), server.SignRaw)
	if err != nil {
		t.Fatal(err)
	}
	hk, _, err := a.Signer(ctx, "fedora")
	if err != nil || !ed25519.Verify(hk.Public().(ed25519.PublicKey), []byte("data"), sig) {
		t.Fatalf("raw signature does not verify: %v", err)
	}
	n, err := a.Store.VerifyAudit(ctx)
	if err != nil || n != 4 {
		t.Fatalf("audit chain: %d records, %v; want 4 valid records", n, err)
	}
	lines := strings.Split(strings.TrimSpace(transcript.String()), "\n")
	var ops []string
	for _, l := range lines {
		var e server.TranscriptEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("transcript line %q: %v", l, err)
		}
		ops = append(ops, e.Operation)
		if e.Actor != "tester@host" || e.Result != "ok" {
			t.Errorf("transcript entry %+v", e)
		}
	}
	if got := strings.Join(ops, ","); got != "user-add,key-generate,key-export-openpgp,key-sign" {
		t.Fatalf("transcript operations = %s", got)
	}
	if bytes.Contains(transcript.Bytes(), []byte("pass one")) || bytes.Contains(transcript.Bytes(), a.PIN) {
		t.Fatal("a secret is in the transcript")
	}
}

// A key that cannot be recorded must not stay in the token.
func TestGenerateRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, _ := newAdmin(t)
	_, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "k", Type: hsm.ECDSAP256, Owner: "nobody", OwnerPassphrase: []byte("x")})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown owner: err = %v, want ErrNotFound", err)
	}
	if _, err := a.Token.FindKey(nil, "k"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("a refused key was left in the token: %v", err)
	}
	_, seed, _ := ed25519.GenerateKey(rand.Reader)
	_, err = a.ImportKey(ctx, server.NewKeyRequest{Name: "imp"}, server.ImportedKey{
		Signer: seed, PGPCreated: time.Unix(1700000000, 0), Fingerprint: strings.Repeat("AB", 20)})
	if err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("import with a fingerprint that cannot match: err = %v", err)
	}
	if _, err := a.Token.FindKey(nil, "imp"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("an import that failed its fingerprint check was left in the token: %v", err)
	}
	if _, err := a.Store.GetKey(ctx, "imp"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an import that failed its fingerprint check was recorded: %v", err)
	}
	if _, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "k", Type: hsm.ECDSAP256}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "k", Type: hsm.Ed25519}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate name: err = %v, want ErrExists", err)
	}
}

// The database and the token must agree before a key is used.
func TestSignerChecksToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, _ := newAdmin(t)
	k, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "k", Type: hsm.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Token.DeleteKey(k.ObjectID, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Signer(ctx, "k"); err == nil || !strings.Contains(err.Error(), "not in token") {
		t.Fatalf("key missing from the token: err = %v", err)
	}
	// Another key in the token under the same id: the public keys differ.
	if _, err := a.Token.GenerateKey(hsm.GenerateRequest{Type: hsm.Ed25519, Label: "impostor", ID: k.ObjectID}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Signer(ctx, "k"); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("different key under the same id: err = %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// A step whose record cannot be written is reported as failed.
func TestRecordFailsClosed(t *testing.T) {
	t.Parallel()
	a, _ := newAdmin(t)
	a.Transcript = failingWriter{}
	err := a.AddUser(context.Background(), "u", false, nil)
	if err == nil || !strings.Contains(err.Error(), "could not be recorded") {
		t.Fatalf("err = %v, want a recording failure", err)
	}
}

func TestParseImportRefusals(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"garbage":       "not a key at all",
		"certificate":   "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"corrupt":       "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"encrypted":     "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
		"two keys":      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"openpgp noise": "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nAAAA\n-----END PGP PRIVATE KEY BLOCK-----\n",
	}
	for name, data := range cases {
		if _, err := server.ParseImport([]byte(data), nil); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "asn1:") {
			t.Errorf("%s: raw decoder detail in the message: %v", name, err)
		}
	}
}
