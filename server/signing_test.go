package server_test

// Table-driven, in-process cases for the signing handlers (rpm.go,
// batch.go, pe.go, cert.go, pgpops.go, signdata.go) through
// internal/servertest: a real SoftHSM2 token and store, no processes.
// Outputs are checked with ProtonMail's OpenPGP implementation and Go's
// crypto/x509, and with rpmkeys and sbverify where they are installed
// (always in CI).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/signet-project/signet/formats/authenticode"
	"github.com/signet-project/signet/formats/rpm"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/servertest"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
)

var alice = map[string]string{"passphrase": servertest.AlicePass}

// dropped, as a wanted status, is a request that gets no reply (§6.6).
const dropped = protocol.ErrorCode(1 << 31)

// keyRing is the OpenPGP certificate of a key, for go-crypto.
func keyRing(t *testing.T, e *servertest.Env, key string) pgp.EntityList {
	t.Helper()
	k, err := e.Admin.Store.GetKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := pgp.ReadKeyRing(bytes.NewReader(k.PGPCertificate))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// dearmor returns the body of an ASCII-armored block, or b if it is not
// armored.
func dearmor(t *testing.T, b []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("-----BEGIN PGP")) {
		return b
	}
	blk, err := armor.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(blk.Body); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func checkDetached(t *testing.T, kr pgp.EntityList, data, sig []byte) {
	t.Helper()
	if _, err := pgp.CheckDetachedSignature(kr, bytes.NewReader(data), bytes.NewReader(dearmor(t, sig)), nil); err != nil {
		t.Fatalf("go-crypto does not accept the signature: %v", err)
	}
	data = append(bytes.Clone(data), 'x')
	if _, err := pgp.CheckDetachedSignature(kr, bytes.NewReader(data), bytes.NewReader(dearmor(t, sig)), nil); err == nil {
		t.Fatal("go-crypto accepts the signature over changed data")
	}
}

// readSigned reads an OpenPGP signed message and checks its signature.
func readSigned(t *testing.T, kr pgp.EntityList, msg []byte) []byte {
	t.Helper()
	md, err := pgp.ReadMessage(bytes.NewReader(dearmor(t, msg)), kr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(md.UnverifiedBody); err != nil {
		t.Fatal(err)
	}
	if !md.IsSigned || md.SignatureError != nil || md.SignedBy == nil {
		t.Fatalf("signed message: signed %v, error %v", md.IsSigned, md.SignatureError)
	}
	return body.Bytes()
}

func TestOpenPGPHandlers(t *testing.T) {
	t.Parallel()
	e := servertest.New(t)
	e.AddKey("x509", hsm.ECDSAP256)
	fedora := keyRing(t, e, "fedora")
	tag := []byte("object 0123456789abcdef0123456789abcdef01234567\ntype commit\ntag v1.0\ntagger A U Thor <a@example.org> 1700000000 +0000\n\nRelease 1.0\n")
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)
	commit := []byte("an OSTree commit object, as bytes")
	sum := sha256.Sum256(commit)
	commitHash := hex.EncodeToString(sum[:])
	text := []byte("Release notes\n- first item\n")

	for _, c := range []struct {
		name    string
		req     servertest.Request
		want    protocol.ErrorCode
		message string // in the reply's message field
		check   func(t *testing.T, out []byte)
	}{
		{"sign-data", servertest.Request{Op: "sign-data", User: "alice", Fields: map[string]string{"key": "fedora"}, Secrets: alice, Payload: []byte("data")},
			protocol.CodeOK, "", func(t *testing.T, out []byte) { checkDetached(t, fedora, []byte("data"), out) }},
		{"sign-data armored", servertest.Request{Op: "sign-data", User: "alice", Fields: map[string]string{"key": "fedora", "armor": "\x01"}, Secrets: alice, Payload: []byte("data")},
			protocol.CodeOK, "", func(t *testing.T, out []byte) {
				if !bytes.HasPrefix(out, []byte("-----BEGIN PGP SIGNATURE-----")) {
					t.Fatalf("not armored: %.40q", out)
				}
				checkDetached(t, fedora, []byte("data"), out)
			}},
		{"sign-data wrong passphrase", servertest.Request{Op: "sign-data", User: "alice", Fields: map[string]string{"key": "fedora"}, Secrets: map[string]string{"passphrase": "no"}, Payload: []byte("data")},
			protocol.CodeAuthenticationFailed, "", nil},
		{"sign-data by a user without access", servertest.Request{Op: "sign-data", User: "bob", Fields: map[string]string{"key": "fedora"}, Secrets: alice, Payload: []byte("data")},
			protocol.CodeAuthenticationFailed, "", nil},
		{"sign-data with an X.509 key", servertest.Request{Op: "sign-data", User: "alice", Fields: map[string]string{"key": "x509"}, Secrets: alice, Payload: []byte("data")},
			protocol.CodeUnsupportedKeytype, "", nil},
		{"sign-text", servertest.Request{Op: "sign-text", User: "alice", Fields: map[string]string{"key": "fedora"}, Secrets: alice, Payload: text},
			protocol.CodeOK, "", func(t *testing.T, out []byte) {
				if !bytes.HasPrefix(out, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) || !bytes.Contains(out, []byte("- first item")) {
					t.Fatalf("not a cleartext signed message: %q", out)
				}
			}},
		{"sign-text of binary data", servertest.Request{Op: "sign-text", User: "alice", Fields: map[string]string{"key": "fedora"}, Secrets: alice, Payload: []byte("bin\x00ary")},
			protocol.CodeUnknownError, "line 1", nil},
		{"sign-git-tag", servertest.Request{Op: "sign-git-tag", User: "alice", Fields: map[string]string{"key": "fedora"}, Secrets: alice, Payload: tag},
			protocol.CodeOK, "", func(t *testing.T, out []byte) { checkDetached(t, fedora, tag, out) }},
		{"sign-git-tag of something else", servertest.Request{Op: "sign-git-tag", User: "alice", Fields: map[string]string{"key": "fedora"}, Secrets: alice, Payload: []byte("not a tag\n")},
			protocol.CodeUnknownError, "", nil},
		{"sign-container", servertest.Request{Op: "sign-container", User: "alice", Fields: map[string]string{"key": "fedora", "docker-reference": "registry.example.org/os/base:1"}, Secrets: alice, Payload: manifest},
			protocol.CodeOK, "", func(t *testing.T, out []byte) {
				doc := readSigned(t, fedora, out)
				d := sha256.Sum256(manifest)
				if !bytes.Contains(doc, []byte(`"docker-reference":"registry.example.org/os/base:1"`)) || !bytes.Contains(doc, []byte("sha256:"+hex.EncodeToString(d[:]))) {
					t.Fatalf("container signature document: %s", doc)
				}
			}},
		{"sign-ostree", servertest.Request{Op: "sign-ostree", User: "alice", Fields: map[string]string{"key": "fedora", "ostree-hash": commitHash}, Secrets: alice, Payload: commit},
			protocol.CodeOK, "", func(t *testing.T, out []byte) {
				if len(out) == 0 {
					t.Fatal("empty commitmeta")
				}
			}},
		{"sign-ostree with another commit's hash", servertest.Request{Op: "sign-ostree", User: "alice", Fields: map[string]string{"key": "fedora", "ostree-hash": strings.Repeat("0", 64)}, Secrets: alice, Payload: commit},
			protocol.CodeUnknownError, "SHA-256", nil},
		{"decrypt with an Ed25519 key", servertest.Request{Op: "decrypt", User: "alice", Fields: map[string]string{"key": "fedora"}, Secrets: alice, Payload: []byte("x")},
			protocol.CodeUnsupportedKeytype, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, out := e.Do(c.req)
			if resp.Status != c.want {
				t.Fatalf("status %v, want %v (message %q)", resp.Status, c.want, message(resp))
			}
			if !strings.Contains(message(resp), c.message) {
				t.Fatalf("message %q lacks %q", message(resp), c.message)
			}
			if c.want != protocol.CodeOK && len(out) != 0 {
				t.Fatalf("a refusal carries a %d-byte payload", len(out))
			}
			if c.check != nil {
				c.check(t, out)
			}
		})
	}
}

func message(resp *server.Response) string { return string(field(resp, "message")) }

// TestDecryptHandler: a message encrypted by go-crypto to an RSA key's
// certificate decrypts in the token; a damaged one is DECRYPT_FAILED.
func TestDecryptHandler(t *testing.T) {
	t.Parallel()
	e := servertest.New(t)
	e.AddKey("rsa", hsm.RSA2048, "RSA <rsa@example.org>")
	kr := keyRing(t, e, "rsa")
	var msg bytes.Buffer
	w, err := pgp.Encrypt(&msg, kr, nil, nil, nil)
	if err != nil {
		t.Fatalf("go-crypto cannot encrypt to the key's certificate: %v", err)
	}
	w.Write([]byte("the plaintext"))
	w.Close()
	damaged := bytes.Clone(msg.Bytes())
	damaged[len(damaged)-5] ^= 1
	for _, c := range []struct {
		name    string
		payload []byte
		want    protocol.ErrorCode
		plain   string
	}{
		{"intact", msg.Bytes(), protocol.CodeOK, "the plaintext"},
		{"damaged", damaged, protocol.CodeDecryptFailed, ""},
		{"not OpenPGP", []byte("garbage"), protocol.CodeDecryptFailed, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, out := e.Do(servertest.Request{Op: "decrypt", User: "alice", Fields: map[string]string{"key": "rsa"}, Secrets: alice, Payload: c.payload})
			if resp.Status != c.want || string(out) != c.plain {
				t.Fatalf("status %v payload %q, want %v %q (message %q)", resp.Status, out, c.want, c.plain, message(resp))
			}
		})
	}
}

// TestSignRPMHandlers: sign-rpm and the items of a sign-rpms batch
// (batch.go's Batch, as rpm.go implements it), signed with an Ed25519
// OpenPGP key and checked by rpm.Read and, where installed, rpmkeys.
func TestSignRPMHandlers(t *testing.T) {
	t.Parallel()
	e := servertest.New(t)
	e.AddKey("x509", hsm.ECDSAP256)
	k, _ := e.Admin.Store.GetKey(context.Background(), "fedora")
	good := realRPM(t, "payload-test-0.1-w9.gzdio.x86_64.rpm")
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-100] ^= 0x40
	checkRPM := func(t *testing.T, out []byte) {
		t.Helper()
		p, err := rpm.Read(bytes.NewReader(out), int64(len(out)))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(bytes.NewReader(out)); err != nil {
			t.Fatal(err)
		}
		if testenv.Has(t, "rpmkeys") {
			rpmChecksig(t, k.PGPCertificate, out, "Header V4 EdDSA")
		}
	}
	key := map[string]string{"key": "fedora"}
	for _, c := range []struct {
		name    string
		fields  map[string]string
		payload []byte
		want    protocol.ErrorCode
	}{
		{"good", key, good, protocol.CodeOK},
		{"another compression", key, realRPM(t, "payload-test-0.1-w3.zstdio.x86_64.rpm"), protocol.CodeOK},
		{"corrupt payload", key, corrupt, protocol.CodeCorruptRPM},
		{"not an RPM", key, []byte("not an rpm"), protocol.CodeCorruptRPM},
		{"an X.509 key", map[string]string{"key": "x509"}, good, protocol.CodeUnsupportedKeytype},
	} {
		t.Run("sign-rpm "+c.name, func(t *testing.T) {
			resp, out := e.Do(servertest.Request{Op: "sign-rpm", User: "alice", Fields: c.fields, Secrets: alice, Payload: c.payload})
			if resp.Status != c.want {
				t.Fatalf("status %v, want %v (message %q)", resp.Status, c.want, message(resp))
			}
			if c.want == protocol.CodeOK {
				checkRPM(t, out)
			}
		})
	}

	resp, _ := e.Do(servertest.Request{Op: "sign-rpms", User: "alice", Fields: key, Secrets: alice})
	if resp.Status != protocol.CodeOK || resp.Batch == nil {
		t.Fatalf("sign-rpms: status %v, batch %v", resp.Status, resp.Batch)
	}
	defer resp.Batch.Close()
	var results []*server.BatchResult
	for i, c := range []struct {
		payload []byte
		want    protocol.ErrorCode
	}{
		{good, protocol.CodeOK},
		{corrupt, protocol.CodeCorruptRPM},
		{realRPM(t, "empty-0.1-1.x86_64.rpm"), protocol.CodeOK},
		{[]byte("not an rpm"), protocol.CodeCorruptRPM},
	} {
		it := &server.BatchItem{Seq: uint32(i), ID: binary.BigEndian.AppendUint32(nil, uint32(i)), Fields: map[string][]byte{},
			Payload: bytes.NewReader(c.payload), Size: int64(len(c.payload)), Authenticated: true}
		r := resp.Batch.Sign(context.Background(), it)
		if r.Status != c.want {
			t.Fatalf("sign-rpms item %d: status %v, want %v (%s)", i, r.Status, c.want, r.Message)
		}
		if r.Status == protocol.CodeOK {
			var out bytes.Buffer
			if _, err := out.ReadFrom(r.Payload); err != nil {
				t.Fatal(err)
			}
			checkRPM(t, out.Bytes())
		}
		results = append(results, r)
	}
	if err := resp.Batch.Record(context.Background(), results); err != nil {
		t.Fatalf("recording the batch: %v", err)
	}
	if n, err := e.Admin.Store.VerifyAudit(context.Background()); err != nil || n == 0 {
		t.Fatalf("audit chain after the batch: %d records, %v", n, err)
	}
}

// TestCertificateAndPEHandlers: sign-certificate makes a CA and a
// code-signing certificate (checked with crypto/x509), then sign-pe signs
// shim with it (checked with the Authenticode digest and, where
// installed, sbverify). The cases run in order: later ones use what
// earlier ones made.
func TestCertificateAndPEHandlers(t *testing.T) {
	t.Parallel()
	e := servertest.New(t)
	e.AddKey("ca", hsm.ECDSAP256)
	e.AddKey("signer", hsm.ECDSAP256)
	shimPath := filepath.Join(artifacts.EFIImages(t), "amd64", "shim.efi")
	shim, err := os.ReadFile(shimPath)
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]*x509.Certificate{}
	certOut := func(name string) func(t *testing.T, out []byte) {
		return func(t *testing.T, out []byte) {
			blk, _ := pem.Decode(out)
			if blk == nil {
				t.Fatalf("not PEM: %q", out)
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			certs[name] = c
		}
	}
	cert := func(issuer, issuerCert, subject, name, subj, kind string) map[string]string {
		f := map[string]string{"issuer-key": issuer, "subject-key": subject, "subject-certificate-name": name,
			"subject": subj, "validity": "1y", "certificate-type": kind}
		if issuerCert != "" {
			f["issuer-certificate-name"] = issuerCert
		}
		return f
	}
	for _, c := range []struct {
		name  string
		req   servertest.Request
		want  protocol.ErrorCode
		check func(t *testing.T, out []byte)
	}{
		{"self-signed CA", servertest.Request{Op: "sign-certificate", User: "alice", Secrets: alice,
			Fields: cert("ca", "", "ca", "ca", "CN=Test Secure Boot CA", "ca")}, protocol.CodeOK, certOut("ca")},
		{"code-signing certificate", servertest.Request{Op: "sign-certificate", User: "alice", Secrets: alice,
			Fields: cert("ca", "ca", "signer", "signer", "CN=Test Secure Boot Signer", "codesigning")}, protocol.CodeOK, func(t *testing.T, out []byte) {
			certOut("signer")(t, out)
			if err := certs["signer"].CheckSignatureFrom(certs["ca"]); err != nil {
				t.Fatalf("the signer's certificate does not verify under the CA's: %v", err)
			}
			if len(certs["signer"].ExtKeyUsage) != 1 || certs["signer"].ExtKeyUsage[0] != x509.ExtKeyUsageCodeSigning {
				t.Fatalf("EKU %v, want codeSigning", certs["signer"].ExtKeyUsage)
			}
		}},
		{"a name taken (dropped, as Sigul does)", servertest.Request{Op: "sign-certificate", User: "alice", Secrets: alice,
			Fields: cert("ca", "ca", "signer", "signer", "CN=again", "codesigning")}, dropped, nil},
		{"a name that is not letters only (dropped)", servertest.Request{Op: "sign-certificate", User: "alice", Secrets: alice,
			Fields: cert("ca", "ca", "signer", "signer2", "CN=again", "codesigning")}, dropped, nil},
		{"a gnupg issuer", servertest.Request{Op: "sign-certificate", User: "alice", Secrets: alice,
			Fields: cert("fedora", "", "fedora", "x", "CN=x", "ca")}, protocol.CodeUnsupportedKeytype, nil},
		{"a bad validity", servertest.Request{Op: "sign-certificate", User: "alice", Secrets: alice,
			Fields: map[string]string{"issuer-key": "ca", "subject-key": "ca", "subject-certificate-name": "other",
				"subject": "CN=x", "validity": "forever", "certificate-type": "ca"}}, protocol.CodeUnknownError, nil},
		{"sign-pe", servertest.Request{Op: "sign-pe", User: "alice", Secrets: alice, Fields: map[string]string{"key": "signer", "cert-name": "signer"}, Payload: shim},
			protocol.CodeOK, func(t *testing.T, out []byte) {
				in, err := authenticode.Parse(bytes.NewReader(shim), int64(len(shim)))
				if err != nil {
					t.Fatal(err)
				}
				signed, err := authenticode.Parse(bytes.NewReader(out), int64(len(out)))
				if err != nil {
					t.Fatalf("the signed image does not parse: %v", err)
				}
				d1, _ := in.Digest()
				d2, _ := signed.Digest()
				if len(out) <= len(shim) || !bytes.Equal(d1, d2) {
					t.Fatalf("signed image: %d bytes (from %d), digest changed %v", len(out), len(shim), !bytes.Equal(d1, d2))
				}
				if testenv.Has(t, "sbverify") {
					dir := t.TempDir()
					os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs["ca"].Raw}), 0o644)
					os.WriteFile(filepath.Join(dir, "shim.signed"), out, 0o644)
					if b, err := exec.Command("sbverify", "--cert", filepath.Join(dir, "ca.pem"), filepath.Join(dir, "shim.signed")).CombinedOutput(); err != nil {
						t.Fatalf("sbverify: %v\n%s", err, b)
					}
				}
			}},
		{"sign-pe with an unknown certificate", servertest.Request{Op: "sign-pe", User: "alice", Secrets: alice, Fields: map[string]string{"key": "signer", "cert-name": "nothere"}, Payload: shim},
			protocol.CodeUnknownError, nil},
		{"sign-pe with a gnupg key", servertest.Request{Op: "sign-pe", User: "alice", Secrets: alice, Fields: map[string]string{"key": "fedora", "cert-name": "signer"}, Payload: shim},
			protocol.CodeUnsupportedKeytype, nil},
		{"sign-pe of a non-PE file", servertest.Request{Op: "sign-pe", User: "alice", Secrets: alice, Fields: map[string]string{"key": "signer", "cert-name": "signer"}, Payload: []byte("MZ but nothing else")},
			protocol.CodeUnknownError, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, out, err := e.Try(c.req)
			switch {
			case c.want == dropped && errors.Is(err, server.ErrDrop):
				return
			case err != nil:
				t.Fatalf("dropped (%v), want status %v", err, c.want)
			case c.want == dropped:
				t.Fatalf("status %v, want no reply", resp.Status)
			case resp.Status != c.want:
				t.Fatalf("status %v, want %v (message %q)", resp.Status, c.want, message(resp))
			}
			if c.check != nil {
				c.check(t, out)
			}
		})
	}
}
