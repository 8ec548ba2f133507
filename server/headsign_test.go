package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/formats/rpm"
	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
)

// realRPM reads one of go-rpmutils' test packages.
func realRPM(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(artifacts.RPMUtilsTestdata(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rpmChecksig imports the OpenPGP certificate cert into a fresh rpm
// database and runs rpmkeys --checksig -v on pkg, requiring every line
// in want and no failure.
func rpmChecksig(t *testing.T, cert, pkg []byte, want ...string) {
	t.Helper()
	testenv.MustHave(t, "rpmkeys")
	dir := t.TempDir()
	armored, err := armorCert(cert)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "key.asc"), armored, 0o644)
	os.WriteFile(filepath.Join(dir, "p.rpm"), pkg, 0o644)
	db := filepath.Join(dir, "db")
	if out, err := exec.Command("rpmkeys", "--dbpath", db, "--import", filepath.Join(dir, "key.asc")).CombinedOutput(); err != nil {
		t.Fatalf("rpmkeys --import: %v\n%s", err, out)
	}
	out, err := exec.Command("rpmkeys", "--dbpath", db, "--checksig", "-v", filepath.Join(dir, "p.rpm")).CombinedOutput()
	if err != nil || strings.Contains(string(out), "NOKEY") || strings.Contains(string(out), "BAD") {
		t.Fatalf("rpmkeys --checksig: %v\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Fatalf("rpmkeys --checksig output lacks %q:\n%s", w, out)
		}
	}
}

// TestHeadSigningAuthentication: in head mode the server signs what the
// client's payload MAC covers, whole packages (Sigul's client) and
// headers alone (signet's client) alike, and returns only the signature
// header; a package whose bytes the MAC does not cover is refused unless
// it arrived whole and matches its rpm-sigmd5 (PROTOCOL-v1 §7.8, issue 11
// finding 4).
func TestHeadSigningAuthentication(t *testing.T) {
	t.Parallel()
	f := newOps(t)
	resp, _ := f.do("sign-rpms", "alice", fieldsName("key", "fedora", "head-signing", bool1), alicePass, nil)
	f.want("sign-rpms", resp, protocol.CodeOK)
	if resp.Batch == nil {
		t.Fatal("sign-rpms gave no batch")
	}
	defer resp.Batch.Close()
	k, _ := f.a.Store.GetKey(context.Background(), "fedora")

	modern := realRPM(t, "payload-test-0.1-w9.gzdio.x86_64.rpm")
	old := realRPM(t, "simple-1.0.1-1.i386.rpm") // no payload digest (rpm < 4.14)
	pm, err := rpm.Read(bytes.NewReader(modern), int64(len(modern)))
	if err != nil {
		t.Fatal(err)
	}
	po, _ := rpm.Read(bytes.NewReader(old), int64(len(old)))
	headers := modern[:pm.PayloadOffset+16]
	corrupt := bytes.Clone(modern)
	corrupt[len(corrupt)-100] ^= 0x40
	md5 := func(p *rpm.Package) string { return string(p.SigMD5()) }

	seq := uint32(0)
	sign := func(payload []byte, authenticated bool, fields map[string]string) *server.BatchResult {
		seq++
		it := &server.BatchItem{Seq: seq, ID: binary.BigEndian.AppendUint32(nil, seq), Fields: map[string][]byte{},
			Payload: bytes.NewReader(payload), Size: int64(len(payload)), Authenticated: authenticated}
		for k, v := range fields {
			it.Fields[k] = []byte(v)
		}
		return resp.Batch.Sign(context.Background(), it)
	}
	// splice checks an OK result and returns the package with its new
	// signature header.
	splice := func(name string, r *server.BatchResult, pkg []byte, p *rpm.Package) []byte {
		t.Helper()
		if r.Status != protocol.CodeOK {
			t.Fatalf("%s: status %d (%s)", name, r.Status, r.Message)
		}
		hdr := make([]byte, r.Size)
		if _, err := r.Payload.Read(hdr); err != nil && r.Size > 0 {
			t.Fatal(err)
		}
		if int64(len(hdr)) >= int64(len(pkg)) || !bytes.HasPrefix(hdr, []byte{0x8e, 0xad, 0xe8, 0x01}) {
			t.Fatalf("%s: the reply is not a signature header alone (%d bytes)", name, len(hdr))
		}
		var out bytes.Buffer
		if err := rpm.Splice(&out, bytes.NewReader(pkg), p, hdr); err != nil {
			t.Fatalf("%s: splice: %v", name, err)
		}
		return out.Bytes()
	}

	for _, c := range []struct {
		name          string
		payload       []byte
		authenticated bool
		fields        map[string]string
	}{
		{"whole package, MAC verified (Sigul's client)", modern, true, nil},
		{"headers and 16 payload bytes, MAC verified (signet's client)", headers, true, nil},
		{"whole package, MAC not verified, rpm-sigmd5 matches (fetched from Koji)", modern, false, map[string]string{"rpm-sigmd5": md5(pm)}},
	} {
		rpmChecksig(t, k.PGPCertificate, splice(c.name, sign(c.payload, c.authenticated, c.fields), modern, pm),
			"Header V4 EdDSA/SHA256 Signature", "Payload SHA256 digest: OK")
	}
	// A package without payload digest, sent whole: its header+payload
	// signature is made here and travels in the signature header.
	rpmChecksig(t, k.PGPCertificate, splice("old package, whole", sign(old, true, nil), old, po),
		"Header V4 EdDSA/SHA256 Signature", "    V4 EdDSA/SHA256 Signature", "MD5 digest: OK")

	for _, c := range []struct {
		name          string
		payload       []byte
		authenticated bool
		fields        map[string]string
		status        protocol.ErrorCode
		message       string
	}{
		{"headers, MAC not verified, rpm-sigmd5 matches", headers, false, map[string]string{"rpm-sigmd5": md5(pm)},
			protocol.CodeUnauthenticatedRPM, "cannot vouch for a payload the server never saw"},
		{"whole package, MAC not verified, no rpm-sigmd5", modern, false, nil, protocol.CodeUnauthenticatedRPM, "payload MAC does not verify"},
		{"rpm-sigmd5 of 15 bytes", modern, true, map[string]string{"rpm-sigmd5": md5(pm)[:15]}, protocol.CodeUnknownError, "want 16"},
		{"rpm-sigmd5 of 17 bytes", headers, false, map[string]string{"rpm-sigmd5": md5(pm) + "x"}, protocol.CodeUnknownError, "want 16"},
		{"rpm-sigmd5 of another package", modern, false, map[string]string{"rpm-sigmd5": md5(po)}, protocol.CodeUnknownError, "does not match"},
		{"corrupt payload, whole, MAC verified", corrupt, true, nil, protocol.CodeCorruptRPM, "digest mismatch"},
		{"old package, headers only", old[:po.PayloadOffset+16], true, nil, protocol.CodeUnknownError, "send the whole package"},
		{"package longer than its size tag", append(bytes.Clone(modern), 0), true, nil, protocol.CodeCorruptRPM, "extended package"},
	} {
		r := sign(c.payload, c.authenticated, c.fields)
		if r.Status != c.status || !strings.Contains(r.Message, c.message) || r.Payload != nil {
			t.Errorf("%s: status %d, message %q; want %d, %q, no payload", c.name, r.Status, r.Message, c.status, c.message)
		}
	}
}

// TestSignRPMsSubReplyIndex: a batch with refused packages in the middle
// is answered with sub-replies keyed by the number of OK sub-replies
// before each (PROTOCOL-v1 §7.9 item 6), the rule the unmodified Sigul
// 1.2 client checks them with, and every package gets its answer.
func TestSignRPMsSubReplyIndex(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t)
	good := realRPM(t, "payload-test-0.1-w9.gzdio.x86_64.rpm")
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-100] ^= 0x40
	items := [][]byte{good, corrupt, realRPM(t, "empty-0.1-1.x86_64.rpm"), []byte("not an rpm"), corrupt, good}
	want := []protocol.ErrorCode{protocol.CodeOK, protocol.CodeCorruptRPM, protocol.CodeOK, protocol.CodeCorruptRPM, protocol.CodeCorruptRPM, protocol.CodeOK}

	conn := f.bridge.accept(t, 5*time.Second)
	defer conn.Close()
	sk, err := protocol.GenerateSubKeys(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, keys, err := f.send(conn, "alice", fieldsName("op", "sign-rpms", "user", "alice", "key", "fedora"), alicePass, nil, &sk)
	if err != nil {
		t.Fatal(err)
	}
	rh, _, err := protocol.ReadReply(m.Reader(protocol.Outer), keys, 1<<20)
	if err != nil || rh.Code() != protocol.CodeOK {
		t.Fatalf("sign-rpms reply: %v", err)
	}
	sent := sendSubRequests(m, sk, items)
	rr := protocol.NewSubReplyReader(m.Reader(protocol.Outer), sk, 1<<30)
	for i := range items {
		s, err := rr.Next()
		if err != nil {
			t.Fatalf("sub-reply %d: %v", i, err)
		}
		id, _ := s.Header.Fields().U32("id")
		if id != uint32(i) || s.Header.Status() != want[i] {
			t.Fatalf("sub-reply %d: id %d status %v, want %v", i, id, s.Header.Status(), want[i])
		}
		if err := s.Payload.Finish(); err != nil {
			t.Fatalf("sub-reply %d payload: %v", i, err)
		}
	}
	if _, err := rr.Next(); err.Error() != "EOF" {
		t.Fatalf("after the last sub-reply: %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if rule, decided := rr.Indexing(); !decided || rule != protocol.IndexOKReplies {
		t.Fatalf("sub-replies keyed with %v (decided %v), want %v", rule, decided, protocol.IndexOKReplies)
	}
}

// sendSubRequests writes items as sign-rpms sub-requests numbered from 0,
// then the outer EOF, in the background; the channel says how it ended.
func sendSubRequests(m *protocol.Mux, sk protocol.SubKeys, items [][]byte) <-chan error {
	sent := make(chan error, 1)
	go func() {
		w := protocol.NewSubRequestWriter(m.Writer(protocol.Outer), sk)
		for i, b := range items {
			var fl protocol.Fields
			fl.Set("id", binary.BigEndian.AppendUint32(nil, uint32(i)))
			if _, err := w.Write(fl, uint64(len(b)), bytes.NewReader(b)); err != nil {
				sent <- err
				return
			}
		}
		sent <- m.Writer(protocol.Outer).Close()
	}()
	return sent
}
