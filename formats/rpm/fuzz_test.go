package rpm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzRead reads arbitrary bytes as a package. Whatever Read accepts must
// also be safe to verify and sign: the errors are ErrCorrupt (or, for
// signing, ErrIncomplete or a refusal of an RPM v3 package), and a new
// signature header is accepted by Splice, and the spliced package reads
// back with the same NEVRA and good header digests (and payload, if the
// original's was good).
func FuzzRead(f *testing.F) {
	f.Add(synthPackage(8, []byte("payload")))
	f.Add(synthPackage(-1, nil))
	if dir, err := testdataDir(); err == nil {
		for _, name := range []string{"simple-1.0.1-1.i386.rpm", "empty-0.1-1.x86_64.rpm"} {
			if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
				f.Add(b)
			}
		}
	}
	key := pgpKey(f, ed25519Key())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if p.SigOffset != leadSize || p.MainOffset%8 != 0 || p.MainOffset < p.SigOffset+introSize ||
			p.PayloadOffset < p.MainOffset+introSize || p.PayloadOffset > p.Size || p.Size != int64(len(b)) {
			t.Fatalf("offsets: sig %d main %d payload %d size %d", p.SigOffset, p.MainOffset, p.PayloadOffset, p.Size)
		}
		_ = p.NEVRA().String()
		_ = p.SigMD5()
		verr := p.Verify(bytes.NewReader(b))
		if verr != nil && !errors.Is(verr, ErrCorrupt) {
			t.Fatalf("Verify: %v does not wrap ErrCorrupt", verr)
		}
		sh, err := p.SignatureHeader(bytes.NewReader(b), SignOptions{Key: key, Time: testSigTime})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrIncomplete) && p.main.region {
				t.Fatalf("SignatureHeader: %v", err)
			}
			return
		}
		var out bytes.Buffer
		err = Splice(&out, bytes.NewReader(b), p, sh)
		if err != nil {
			if verr == nil {
				t.Fatalf("Splice of a good package: %v", err)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Splice: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		q, err := Read(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("Read of the signed package: %v", err)
		}
		if q.NEVRA() != p.NEVRA() || q.VerifyHeader() != nil {
			t.Fatalf("signed package: NEVRA %v (was %v), VerifyHeader %v", q.NEVRA(), p.NEVRA(), q.VerifyHeader())
		}
		if err := q.Verify(bytes.NewReader(out.Bytes())); (err == nil) != (verr == nil) {
			t.Fatalf("Verify of the signed package: %v, of the original: %v", err, verr)
		}
	})
}

// fuzzSeeds are the committed seeds of FuzzRead (testdata/fuzz/FuzzRead),
// one for each kind of header Read accepts and a few it refuses.
func fuzzSeeds() map[string][]byte {
	good := synthPackage(8, []byte("payload"))
	p, err := Read(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		panic(err)
	}
	badDigest := append([]byte(nil), good...)
	badDigest[p.PayloadOffset-3] ^= 1
	return map[string][]byte{
		"synth-reserved":          good,
		"synth-no-reserved":       synthPackage(-1, []byte("payload")),
		"synth-no-payload-digest": synth(synthOpts{reserved: 64, payload: []byte("payload"), noPayloadDigest: true}),
		"synth-rpm-v3":            synth(synthOpts{reserved: 8, payload: []byte("payload"), noMainRegion: true}),
		"synth-old-signature":     synth(synthOpts{reserved: -1, payload: []byte("payload"), noSigRegion: true}),
		"synth-truncated":         good[:p.MainOffset+40],
		"synth-header-digest":     badDigest,
	}
}

// TestFuzzSeeds checks that the committed seeds are fuzzSeeds; with
// SIGNET_RPM_WRITE_FUZZ_SEEDS=1 it writes them.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRead")
	write := os.Getenv("SIGNET_RPM_WRITE_FUZZ_SEEDS") == "1"
	for name, b := range fuzzSeeds() {
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		path := filepath.Join(dir, name)
		if write {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is missing or out of date (%v); run with SIGNET_RPM_WRITE_FUZZ_SEEDS=1", path, err)
		}
	}
}

// BenchmarkSignatureHeader makes the signature header of a real package
// with an RSA-2048 software key (the RSA signature dominates).
func BenchmarkSignatureHeader(b *testing.B) {
	pkg := loadRPM(b, ufdio)
	p := readBytes(b, pkg)
	opts := SignOptions{Key: pgpKey(b, rsa2048Key()), Time: testSigTime}
	r := bytes.NewReader(pkg)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.SignatureHeader(r, opts); err != nil {
			b.Fatal(err)
		}
	}
}
