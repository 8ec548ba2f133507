package hsm_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/signet-project/signet/hsm"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

func TestShares(t *testing.T) {
	key, err := hsm.NewWrapKey()
	if err != nil {
		t.Fatal(err)
	}
	shares, err := hsm.SplitWrapKey(key, 3, 5, []string{"alice", "bob", "carol", "dave", "erin"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := hsm.WrapKeyID(key)
	// Through the file format and back; every 3-subset rebuilds the key.
	var parsed []hsm.Share
	for _, s := range shares {
		text := s.Encode()
		if bytes.Contains(text, key) {
			t.Fatal("a share file holds the key")
		}
		p, err := hsm.ParseShare(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("%s: %v", s.FileName(), err)
		}
		if p.Custodian != s.Custodian || p.Index != s.Index || p.WrapKeyID != id || !bytes.Equal(p.Value, s.Value) {
			t.Fatalf("share %d changed through its file: %+v", s.Index, p)
		}
		parsed = append(parsed, p)
	}
	n := 0
	for i := 0; i < 5; i++ {
		for j := i + 1; j < 5; j++ {
			for k := j + 1; k < 5; k++ {
				got, err := hsm.CombineShares([]hsm.Share{parsed[k], parsed[i], parsed[j]})
				if err != nil || !bytes.Equal(got, key) {
					t.Fatalf("shares %d,%d,%d: %v", i+1, j+1, k+1, err)
				}
				n++
			}
		}
	}
	if n != 10 {
		t.Fatal(n)
	}
	if got, err := hsm.CombineShares(parsed); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("all 5 shares: %v", err)
	}

	// Refusals.
	if _, err := hsm.CombineShares(parsed[:2]); err == nil || !strings.Contains(err.Error(), "2 shares given; wrap key "+id+" needs 3 of its 5 shares") {
		t.Fatalf("2 of 3: %v", err)
	}
	if _, err := hsm.CombineShares([]hsm.Share{parsed[0], parsed[1], parsed[1]}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("a share twice: %v", err)
	}
	other, _ := hsm.NewWrapKey()
	others, err := hsm.SplitWrapKey(other, 3, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hsm.CombineShares([]hsm.Share{parsed[0], parsed[1], others[2]}); err == nil || !strings.Contains(err.Error(), "different splits") {
		t.Fatalf("a share of another split: %v", err)
	}
	// A share of another split of the same key.
	again, _ := hsm.SplitWrapKey(key, 3, 5, nil)
	if _, err := hsm.CombineShares([]hsm.Share{parsed[0], parsed[1], again[2]}); err == nil || !strings.Contains(err.Error(), "different splits") {
		t.Fatalf("a share of another split of the same key: %v", err)
	}
	// A forged share that passes the checksum (its author recomputed it)
	// still does not rebuild the key.
	forged := parsed[2]
	forged.Value = bytes.Clone(parsed[2].Value)
	forged.Value[47] ^= 1
	if _, err := hsm.CombineShares([]hsm.Share{parsed[0], parsed[1], forged}); err == nil || !strings.Contains(err.Error(), "do not reconstruct wrap key") {
		t.Fatalf("a wrong share value: %v", err)
	}

	// A mistyped share file: one hex digit of the value, the index, or the
	// checksum itself.
	text := string(shares[1].Encode())
	for name, edit := range map[string]func(string) string{
		"value digit": func(s string) string {
			i := strings.Index(s, "value: ") + 9
			c := byte('0')
			if s[i] == '0' {
				c = '1'
			}
			return s[:i] + string(c) + s[i+1:]
		},
		"index":    func(s string) string { return strings.Replace(s, "share: 2 of 5", "share: 3 of 5", 1) },
		"checksum": func(s string) string { i := strings.Index(s, "checksum: ") + 10; return s[:i] + "0" + s[i+1:] },
		"short":    func(s string) string { i := strings.Index(s, "value: ") + 7; return s[:i] + s[i+1:] },
	} {
		if name == "checksum" && strings.Contains(text, "checksum: 0") {
			continue
		}
		_, err := hsm.ParseShare(strings.NewReader(edit(text)))
		if err == nil {
			t.Fatalf("%s: a mistyped share was accepted", name)
		}
		if strings.Contains(err.Error(), hexOf(shares[1].Value)[:8]) {
			t.Fatalf("%s: the error shows the share", name)
		}
	}
	if _, err := hsm.SplitWrapKey(key, 1, 5, nil); err == nil {
		t.Fatal("1-of-5 accepted")
	}
	if _, err := hsm.SplitWrapKey(key, 6, 5, nil); err == nil {
		t.Fatal("6-of-5 accepted")
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

// TestWrapBetweenTokens: the same wrap key in two tokens; keys generated
// for backup on A are wrapped there and unwrapped on B, where they sign
// for A's public keys; what must be refused is.
func TestWrapBetweenTokens(t *testing.T) {
	t.Parallel() // a token of its own
	tkA, tkB, tkC := softhsmtest.New(t), softhsmtest.New(t), softhsmtest.New(t)
	key, _ := hsm.NewWrapKey()
	other, _ := hsm.NewWrapKey()
	a, b, c := tkA.Open(t), openNoLogin(t, tkB), tkC.Open(t)
	p := hsm.DefaultWrapProfile(a.Info())
	if p.Mechanism != hsm.CKMAESKeyWrapPad || !p.TrustedBySO {
		t.Fatalf("SoftHSM2's profile: %+v", p)
	}
	// A is logged in as the user through its Token: installing needs the
	// SO, so log out first by closing.
	a.Close()
	id, err := hsm.InstallWrapKey(tkA.Config(), p, tkA.SOPIN, tkA.PIN, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hsm.InstallWrapKey(tkA.Config(), p, tkA.SOPIN, tkA.PIN, other); err == nil || !strings.Contains(err.Error(), "already holds another wrap key") {
		t.Fatalf("a second wrap key: %v", err)
	}
	// A wrong SO PIN is refused before anything is stored.
	if _, err := hsm.InstallWrapKey(tkB.Config(), p, tkB.PIN, tkB.PIN, key); !errors.Is(err, hsm.ErrBadPIN) {
		t.Fatalf("wrong SO PIN: %v", err)
	}
	if idB, err := hsm.InstallWrapKey(tkB.Config(), p, tkB.SOPIN, tkB.PIN, key); err != nil || idB != id {
		t.Fatalf("B: %v, %s != %s", err, idB, id)
	}
	c.Close()
	if _, err := hsm.InstallWrapKey(tkC.Config(), p, tkC.SOPIN, tkC.PIN, other); err != nil {
		t.Fatal(err)
	}
	a, c = tkA.Open(t), tkC.Open(t)
	if got, err := a.WrapKeyID(); err != nil || got != id {
		t.Fatalf("A's wrap key: %s %v", got, err)
	}

	// The wrappable types of those under test (SIGNET_HSM_KEYTYPES narrows
	// them under emulation).
	var types []hsm.KeyType
	for _, typ := range keyTypes(t) {
		if typ == hsm.RSA2048 || typ == hsm.ECDSAP256 || (typ == hsm.ECDSAP384 && !testing.Short()) {
			types = append(types, typ)
		}
	}
	if len(types) == 0 {
		t.Fatal("no wrappable key type under test")
	}
	for _, typ := range types {
		k, err := a.GenerateKey(hsm.GenerateRequest{Type: typ, Label: "bk-" + typ.String(), Backup: true})
		if err != nil {
			t.Fatal(err)
		}
		ba, err := k.BackupAttributes()
		if err != nil || !ba.Backupable() {
			t.Fatalf("%v: %+v %v", typ, ba, err)
		}
		wrapped, err := k.Wrap(p, id)
		if err != nil {
			t.Fatalf("wrapping %v: %v", typ, err)
		}
		mac, err := a.MAC(id, wrapped)
		if err != nil {
			t.Fatal(err)
		}
		// Without a login on B, the backup does not come out in clear.
		if v, err := hsm.UnwrapAsPublicObject(b, p, id, wrapped, typ); err == nil {
			t.Fatalf("%v: unwrapped without a login as a readable object (%d bytes)", typ, len(v))
		}
		if typ.IsRSA() {
			if _, err := hsm.DecryptWithWrapKey(a, p, id, wrapped); err == nil {
				t.Fatal("C_Decrypt with the wrap key opened a backup")
			}
		}
		if b.LoggedIn() == false {
			if err := b.Login(tkB.PIN); err != nil {
				t.Fatal(err)
			}
		}
		// Nor with the login.
		if v, err := hsm.UnwrapAsPublicObject(b, p, id, wrapped, typ); err == nil {
			t.Fatalf("%v: unwrapped as a readable object (%d bytes)", typ, len(v))
		}
		if err := b.VerifyMAC(id, wrapped, mac); err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(wrapped)
		bad[len(bad)/2] ^= 1
		if err := b.VerifyMAC(id, bad, mac); !errors.Is(err, hsm.ErrBadMAC) {
			t.Fatalf("a flipped byte: %v", err)
		}
		if err := c.VerifyMAC(id, wrapped, mac); err == nil {
			t.Fatal("C, with another wrap key, verified the MAC")
		}
		if _, err := c.Unwrap(p, hsm.UnwrapRequest{WrapKeyID: id, Wrapped: wrapped, Public: k.Public(), Label: "x", ID: k.ID()}); err == nil {
			t.Fatal("C, with another wrap key, unwrapped")
		}
		rk, err := b.Unwrap(p, hsm.UnwrapRequest{WrapKeyID: id, Wrapped: wrapped, Public: k.Public(), Label: k.Label(), ID: k.ID()})
		if err != nil {
			t.Fatalf("unwrapping %v on B: %v", typ, err)
		}
		// Found again the way the server finds keys, with the same id and
		// public key, and the same backup attributes.
		fk, err := b.FindKey(k.ID(), "")
		if err != nil {
			t.Fatal(err)
		}
		da, _ := x509.MarshalPKIXPublicKey(k.Public())
		db, _ := x509.MarshalPKIXPublicKey(fk.Public())
		if !bytes.Equal(da, db) || fk.Label() != k.Label() {
			t.Fatalf("%v: B's key differs", typ)
		}
		if ba, err := rk.BackupAttributes(); err != nil || !ba.Backupable() {
			t.Fatalf("restored %v: %+v %v", typ, ba, err)
		}
		if err := hsm.CheckPair(fk); err != nil {
			t.Fatal(err)
		}
		// A restored key can be backed up again (B to another token).
		if _, err := rk.Wrap(p, id); err != nil {
			t.Fatal(err)
		}
		// Unwrapping it under the wrong public key fails and leaves nothing.
		k2, err := a.GenerateKey(hsm.GenerateRequest{Type: typ, Label: "other-" + typ.String()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Unwrap(p, hsm.UnwrapRequest{WrapKeyID: id, Wrapped: wrapped, Public: k2.Public(), Label: "mismatch", ID: []byte{0x7f, 0x01}}); err == nil {
			t.Fatal("unwrapped under another public key")
		}
		if _, err := b.FindKey(nil, "mismatch"); !errors.Is(err, hsm.ErrKeyNotFound) {
			t.Fatalf("a refused unwrap left a key: %v", err)
		}
		b.DeleteKey(nil, "mismatch")
		// A key generated without backup never leaves the token.
		if _, err := k2.Wrap(p, id); !errors.Is(err, hsm.ErrNotBackupable) {
			t.Fatalf("wrapping a key generated without backup: %v", err)
		}
		a.DeleteKey(k2.ID(), "")
	}
	if err := a.CheckBackupType(p, hsm.Ed25519); err == nil || !strings.Contains(err.Error(), "CKR_KEY_NOT_WRAPPABLE") {
		t.Fatalf("Ed25519 on SoftHSM2: %v", err)
	}
}

func openNoLogin(t *testing.T, tk *softhsmtest.Token) *hsm.Token {
	tok, err := hsm.Open(tk.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

func TestParseWrapMechanism(t *testing.T) {
	for in, want := range map[string]uint{"aes-key-wrap-pad": 0x210a, "0x210A": 0x210a, "yubico-aes-ccm-wrap": 0xd9554204, "0xd9554204": 0xd9554204} {
		if got, err := hsm.ParseWrapMechanism(in); err != nil || got != want {
			t.Errorf("%s: %x %v", in, got, err)
		}
	}
	for _, in := range []string{"", "aes", "0x", "0xzz", "0x0"} {
		if _, err := hsm.ParseWrapMechanism(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
