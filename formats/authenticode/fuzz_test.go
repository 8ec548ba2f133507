package authenticode

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds Parse arbitrary files. Whatever it accepts must digest,
// sign (replacing any signatures) and parse again to the same digest with
// a right CheckSum; whatever it refuses must be refused with ErrNotPE.
// The seeds in testdata/fuzz/FuzzParse are the synthetic layouts
// (SIGNET_WRITE_FUZZ_SEEDS=1 go test -run TestFuzzSeeds rewrites them).
func FuzzParse(f *testing.F) {
	key, cert := synthSigner(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrNotPE) {
				t.Fatalf("Parse refused without ErrNotPE: %v", err)
			}
			return
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatalf("Digest: %v", err)
		}
		img.Signatures() // must not panic; may fail
		var out bytes.Buffer
		signed, err := Sign(&out, img, key, SignOptions{Certificate: cert, Replace: true})
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if !bytes.Equal(signed, d) {
			t.Fatalf("Sign signed %x, Digest says %x", signed, d)
		}
		img2, err := Parse(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("parsing the signed image: %v", err)
		}
		if d2, err := img2.Digest(); err != nil || !bytes.Equal(d2, d) {
			t.Fatalf("digest of the signed image %x (%v), want %x", d2, err, d)
		}
		sigs, err := img2.Signatures()
		if err != nil || len(sigs) != 1 || !bytes.Equal(sigs[0].Digest, d) {
			t.Fatalf("Signatures of the signed image: %d, %v", len(sigs), err)
		}
		if got, want := storedChecksum(t, out.Bytes()), refChecksum(t, out.Bytes()); got != want {
			t.Fatalf("CheckSum %#x, want %#x", got, want)
		}
		// Appending: refused with ErrNotPE where the table does not allow
		// it; otherwise one more entry, the same digest, the right CheckSum.
		var app bytes.Buffer
		if _, err := Sign(&app, img, key, SignOptions{Certificate: cert}); err != nil {
			if !errors.Is(err, ErrNotPE) {
				t.Fatalf("Sign (append): %v", err)
			}
			return
		}
		img3, err := Parse(bytes.NewReader(app.Bytes()), int64(app.Len()))
		if err != nil {
			t.Fatalf("parsing the image with a signature appended: %v", err)
		}
		before, _ := img.entries()
		after, err := img3.entries()
		if err != nil || len(after) != len(before)+1 {
			t.Fatalf("appending made %d entries of %d (%v)", len(after), len(before), err)
		}
		if d3, err := img3.Digest(); err != nil || !bytes.Equal(d3, d) {
			t.Fatalf("digest after appending %x (%v), want %x", d3, err, d)
		}
		if got, want := storedChecksum(t, app.Bytes()), refChecksum(t, app.Bytes()); got != want {
			t.Fatalf("CheckSum after appending %#x, want %#x", got, want)
		}
	})
}

// TestFuzzSeeds checks that the committed seed corpus holds the synthetic
// layouts, and rewrites it when SIGNET_WRITE_FUZZ_SEEDS=1.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	write := os.Getenv("SIGNET_WRITE_FUZZ_SEEDS") == "1"
	seeds := map[string][]byte{}
	for _, l := range synthLayouts {
		seeds[l.name] = l.pe.build()
	}
	seeds["two-signatures"] = synthPE{sections: twoSections, table: append(winCert(certTypePKCS, []byte{0x30, 0}), winCert(certTypePKCS, []byte{0x30, 0x03, 0x06, 0x01, 0x00})...)}.build()
	seeds["mz-only"] = []byte("MZ")
	seeds["gzip"] = []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00")
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range seeds {
		path := filepath.Join(dir, name)
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if write {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is missing or stale (%v): SIGNET_WRITE_FUZZ_SEEDS=1 go test -run TestFuzzSeeds rewrites the seeds", path, err)
		}
	}
}
