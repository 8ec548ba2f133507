package openpgp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gopenpgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signet-project/signet/internal/testenv"
)

// testManifest is a docker v2 schema 2 image manifest.
const testManifest = `{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1469,
      "digest": "sha256:feb5d9fea6a5e9606aa995e879d862b825965ba48de054caab5ef356dc6b3412"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 2479,
         "digest": "sha256:2db29710123e3e53a794f2694094b9b4338aa9ee5c40b930cb8063a1be392c54"
      }
   ]
}`

const testDockerReference = "registry.example.org/signet/hello-world:1.0"

func TestContainerSignatureDocument(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	doc, err := ContainerSignatureDocument(strings.NewReader(testManifest), testDockerReference, "Sigul <1.2>", ts)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(testManifest))
	want := `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"sha256:` + hex.EncodeToString(sum[:]) +
		`"},"identity":{"docker-reference":"registry.example.org/signet/hello-world:1.0"}},"optional":{"creator":"Sigul <1.2>","timestamp":1714979289}}`
	if string(doc) != want {
		t.Errorf("document\n%s\nwant\n%s", doc, want)
	}
	var parsed map[string]map[string]any
	if err := json.Unmarshal(doc, &parsed); err != nil || len(parsed) != 2 {
		t.Errorf("document does not parse as two JSON objects (%v): %s", err, doc)
	}

	doc, err = ContainerSignatureDocument(strings.NewReader(""), "quay.io/x/y@sha256:"+strings.Repeat("0", 64), "", ts)
	if err != nil || !strings.Contains(string(doc), `"optional":{"timestamp":1714979289}`) {
		t.Errorf("empty creator: %s (%v), want no creator", doc, err)
	}

	for _, c := range []struct {
		name, ref, creator, want string
		r                        io.Reader
	}{
		{"empty reference", "", "c", "empty docker reference", strings.NewReader("{}")},
		{"reference not UTF-8", "x\xff", "c", "not UTF-8", strings.NewReader("{}")},
		{"creator not UTF-8", "x", "\xff", "not UTF-8", strings.NewReader("{}")},
		{"read error", "x", "c", "reading the manifest: boom", io.MultiReader(strings.NewReader("{"), errReader{})},
	} {
		if _, err := ContainerSignatureDocument(c.r, c.ref, c.creator, ts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// TestSignMessageFormat checks the packets of a signed message and that
// go-crypto verifies it and gives the data back.
func TestSignMessageFormat(t *testing.T) {
	for _, tc := range clearSignKeys(t) {
		k, err := NewKey(tc.signer, testCreated)
		if err != nil {
			t.Fatal(err)
		}
		keyring, err := gopenpgp.ReadKeyRing(bytes.NewReader(mustCert(t, k)))
		if err != nil {
			t.Fatal(err)
		}
		for _, data := range []string{"", "hello\n", testManifest} {
			msg, err := k.SignMessage(strings.NewReader(data), testSigTime)
			if err != nil {
				t.Fatal(err)
			}
			pr := packet.NewReader(bytes.NewReader(msg))
			var types []string
			for {
				p, err := pr.Next()
				if err != nil {
					break
				}
				types = append(types, fmt.Sprintf("%T", p))
				if lit, ok := p.(*packet.LiteralData); ok {
					io.Copy(io.Discard, lit.Body)
					if !lit.IsBinary || lit.FileName != "" || lit.Time != uint32(testSigTime.Unix()) {
						t.Errorf("%s: literal data binary %v, name %q, time %d", tc.name, lit.IsBinary, lit.FileName, lit.Time)
					}
				}
			}
			if got := strings.Join(types, " "); got != "*packet.OnePassSignature *packet.LiteralData *packet.Signature" {
				t.Errorf("%s: packets %s", tc.name, got)
			}

			md, err := gopenpgp.ReadMessage(bytes.NewReader(msg), keyring, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(md.UnverifiedBody)
			if err != nil || string(got) != data || md.SignatureError != nil || md.SignedByKeyId != k.KeyID() {
				t.Errorf("%s: go-crypto reads %q (%v), signature error %v, signed by %X", tc.name, got, err, md.SignatureError, md.SignedByKeyId)
			}
		}
	}

	k, _ := NewKey(testSigners()[4].signer, testCreated)
	if _, err := k.SignMessage(strings.NewReader("x"), testCreated.Add(-time.Second)); err == nil || !strings.Contains(err.Error(), "before the key creation") {
		t.Errorf("signature time before key creation: error %v", err)
	}
	if _, err := k.SignMessage(io.MultiReader(strings.NewReader("x"), errReader{}), testSigTime); err == nil || !strings.Contains(err.Error(), "reading data: boom") {
		t.Errorf("read error: error %v", err)
	}
}

// TestContainerSignatureWithGPGAndSkopeo signs a container signature
// document with SignMessage and has gpg give the document back with a valid
// signature and skopeo standalone-verify accept it for the manifest and
// reference (and refuse it for others).
func TestContainerSignatureWithGPGAndSkopeo(t *testing.T) {
	testenv.MustHave(t, "gpg")
	for _, tc := range verifierKeys(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := NewKey(tc.signer, testCreated)
			if err != nil {
				t.Fatal(err)
			}
			home, _ := verifierSetup(t, k)
			doc, err := ContainerSignatureDocument(strings.NewReader(testManifest), testDockerReference, "Sigul 1.2", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			msg, err := k.SignMessage(bytes.NewReader(doc), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			sigPath := writeFile(t, home, "signature-1", msg)
			manifestPath := writeFile(t, home, "manifest.json", []byte(testManifest))

			outPath := filepath.Join(home, "doc.json")
			status, err := gpgRun(home, "--status-fd", "1", "--output", outPath, "--decrypt", sigPath)
			if err != nil || !strings.Contains(status, "[GNUPG:] VALIDSIG "+k.FingerprintHex()) {
				t.Errorf("gpg --decrypt (err %v):\n%s", err, status)
			} else if got, _ := os.ReadFile(outPath); !bytes.Equal(got, doc) {
				t.Errorf("gpg gives %q, want %q", got, doc)
			}

			testenv.MustHave(t, "skopeo")
			skopeo := func(manifest, ref string) (string, error) {
				cmd := exec.Command("skopeo", "standalone-verify", manifest, ref, k.FingerprintHex(), sigPath)
				cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			sum := sha256.Sum256([]byte(testManifest))
			out, err := skopeo(manifestPath, testDockerReference)
			if want := "Signature verified, digest sha256:" + hex.EncodeToString(sum[:]); err != nil || !strings.Contains(out, want) {
				t.Errorf("skopeo standalone-verify (err %v), want %q:\n%s", err, want, out)
			}
			if out, err := skopeo(manifestPath, "registry.example.org/signet/other:1.0"); err == nil || !strings.Contains(out, "does not match") {
				t.Errorf("skopeo on another docker reference (err %v):\n%s", err, out)
			}
			otherManifest := writeFile(t, home, "other.json", []byte(strings.Replace(testManifest, "2479", "2480", 1)))
			if out, err := skopeo(otherManifest, testDockerReference); err == nil || !strings.Contains(out, "does not match") {
				t.Errorf("skopeo on another manifest (err %v):\n%s", err, out)
			}
		})
	}
}
