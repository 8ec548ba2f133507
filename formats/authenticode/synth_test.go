package authenticode

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"encoding/binary"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/signet-project/signet/internal/testenv"
)

// synthSection is a section of a synthetic image.
type synthSection struct {
	name      string
	off, size uint32
}

// synthPE describes a small synthetic PE image; zero fields take defaults.
type synthPE struct {
	pe32          bool
	machine       Machine
	peOff         uint32 // default 0x80
	ndirs         int    // default 16
	optSize       int    // default: what ndirs needs
	sizeOfHeaders uint32 // default 0x200
	sections      []synthSection
	trailing      int    // bytes after the last section
	table         []byte // a certificate table to put at the end
	tableGap      int    // bytes between the data and the table
	after         []byte // bytes after the table
}

func (s synthPE) build() []byte {
	peOff := cmpOr(s.peOff, 0x80)
	ndirs := cmpOr(s.ndirs, 16)
	dirBase := 112
	magic := uint16(magicPE32Plus)
	machine := cmpOr(s.machine, MachineAMD64)
	if s.pe32 {
		dirBase, magic, machine = 96, magicPE32, cmpOr(s.machine, MachineI386)
	}
	optSize := cmpOr(s.optSize, dirBase+8*ndirs)
	soh := cmpOr(s.sizeOfHeaders, 0x200)
	end := int(soh)
	for _, sec := range s.sections {
		end = max(end, int(sec.off+sec.size))
	}
	end += s.trailing
	b := make([]byte, end)
	rng := mrand.NewChaCha8([32]byte{'s', 'y', 'n', 't', 'h'})
	for _, sec := range s.sections {
		rng.Read(b[sec.off : sec.off+sec.size])
	}
	rng.Read(b[end-s.trailing:])

	clear(b[:min(int(soh), len(b))])
	copy(b, "MZ")
	le := binary.LittleEndian
	le.PutUint32(b[0x3c:], peOff)
	copy(b[peOff:], "PE\x00\x00")
	coff := b[peOff+4:]
	le.PutUint16(coff[0:], uint16(machine))
	le.PutUint16(coff[2:], uint16(len(s.sections)))
	le.PutUint16(coff[16:], uint16(optSize))
	le.PutUint16(coff[18:], 0x0206)
	opt := b[peOff+24:]
	le.PutUint16(opt[0:], magic)
	le.PutUint32(opt[32:], 0x1000)                             // SectionAlignment
	le.PutUint32(opt[36:], 0x200)                              // FileAlignment
	le.PutUint32(opt[56:], uint32(0x1000*(len(s.sections)+1))) // SizeOfImage
	le.PutUint32(opt[60:], soh)                                // SizeOfHeaders
	le.PutUint16(opt[68:], 10)                                 // Subsystem: EFI application
	le.PutUint32(opt[dirBase-4:], uint32(ndirs))               // NumberOfRvaAndSizes
	sh := b[int(peOff)+24+optSize:]
	for i, sec := range s.sections {
		h := sh[i*sectionHeaderSize:]
		copy(h[:8], sec.name)
		le.PutUint32(h[8:], sec.size)
		le.PutUint32(h[12:], uint32(0x1000*(i+1)))
		le.PutUint32(h[16:], sec.size)
		le.PutUint32(h[20:], sec.off)
		le.PutUint32(h[36:], 0x60000020)
	}
	if s.table != nil {
		b = append(b, make([]byte, s.tableGap)...)
		le.PutUint32(opt[dirBase+32:], uint32(len(b)))
		le.PutUint32(opt[dirBase+36:], uint32(len(s.table)))
		b = append(b, s.table...)
	}
	return append(b, s.after...)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// winCert is one WIN_CERTIFICATE entry, padded to 8 bytes.
func winCert(typ uint16, data []byte) []byte {
	e := make([]byte, align8(int64(8+len(data))))
	binary.LittleEndian.PutUint32(e[0:], uint32(8+len(data)))
	binary.LittleEndian.PutUint16(e[4:], certRevision2)
	binary.LittleEndian.PutUint16(e[6:], typ)
	copy(e[8:], data)
	return e
}

var twoSections = []synthSection{{".text", 0x200, 0x200}, {".data", 0x400, 0x400}}

// synthLayouts are the synthetic images the tests and the fuzz seeds use.
// tools says whether sbsign's and osslsigncode's verifiers should agree.
var synthLayouts = []struct {
	name  string
	pe    synthPE
	tools bool
}{
	{"pe32plus", synthPE{sections: twoSections}, true},
	{"pe32-i386", synthPE{pe32: true, sections: twoSections}, true},
	{"riscv64", synthPE{machine: MachineRISCV64, sections: twoSections}, true},
	{"trailing-odd", synthPE{sections: twoSections, trailing: 13}, true},
	{"last-section-unaligned", synthPE{sections: []synthSection{{".text", 0x200, 0x200}, {".data", 0x400, 0x1f3}}}, true},
	{"table-out-of-order", synthPE{sections: []synthSection{{".data", 0x400, 0x400}, {".text", 0x200, 0x200}}}, true},
	{"empty-section", synthPE{sections: []synthSection{{".text", 0x200, 0x200}, {".bss", 0, 0}, {".data", 0x400, 0x200}}}, true},
	{"five-directories", synthPE{ndirs: 5, sections: twoSections}, true},
	{"pe-header-odd-offset", synthPE{peOff: 0x41, sections: twoSections}, false},
	{"gap-between-sections", synthPE{sections: []synthSection{{".text", 0x200, 0x200}, {".data", 0x600, 0x200}}}, false},
	{"overlapping-sections", synthPE{sections: []synthSection{{".text", 0x200, 0x400}, {".data", 0x400, 0x200}}}, false},
	{"signed-unaligned-table", synthPE{sections: []synthSection{{".text", 0x200, 0x1f3}}, table: winCert(0x0EF1, []byte("not a signature"))}, false},
	{"no-sections", synthPE{}, true},
}

var (
	synthMu   sync.Mutex
	synthKey  crypto.Signer
	synthCert *x509.Certificate
)

// synthSigner returns an ECDSA P-256 key and its code-signing certificate,
// the same for the whole test binary, for quick signatures.
func synthSigner(t testing.TB) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	if synthKey == nil {
		p := newPKI(t, t.TempDir(), "synthetic", p256)
		synthKey, synthCert = p.key, p.leaf
	}
	return synthKey, synthCert
}

// TestSyntheticLayouts checks Digest against the in-memory reference on
// layouts the real images lack (PE32, gaps, overlaps, out-of-order section
// tables, an unaligned existing table), signs each, and where both tools
// hash the layout alike, has sbverify and osslsigncode verify.
func TestSyntheticLayouts(t *testing.T) {
	haveSbverify := testenv.Has(t, "sbverify")
	haveOssl := testenv.Has(t, "osslsigncode")
	tmp := t.TempDir()
	p := newPKI(t, tmp, "synthetic-layouts", p256)
	for _, l := range synthLayouts {
		t.Run(l.name, func(t *testing.T) {
			b := l.pe.build()
			img := parseBytes(t, b)
			got := mustDigest(t, img)
			if want := refDigest(t, b, true); !bytes.Equal(got, want) {
				t.Fatalf("Digest %x, reference %x", got, want)
			}
			var out bytes.Buffer
			s := &opaqueSigner{inner: p.key}
			d, err := Sign(&out, img, s, SignOptions{Certificate: p.leaf, Replace: l.pe.table != nil})
			if err != nil {
				t.Fatal(err)
			}
			if s.calls.Load() != 1 || !bytes.Equal(d, got) {
				t.Errorf("%d calls to Sign; signed %x, Digest %x", s.calls.Load(), d, got)
			}
			checkSignedBytes(t, b, out.Bytes(), d)
			checkOurSignature(t, out.Bytes(), d, p, nil)
			if !l.tools {
				return
			}
			path := filepath.Join(tmp, l.name+".efi")
			if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			if haveSbverify {
				sbverifyOK(t, p.leafPEM, path)
			}
			if haveOssl {
				osslVerify(t, p.caPEM, path, d)
			}
		})
	}
}

func TestAppendToUnalignedOrMalformedTable(t *testing.T) {
	key, cert := synthSigner(t)
	for _, tc := range []struct {
		name string
		pe   synthPE
		want string
	}{
		{"unaligned", synthPE{sections: []synthSection{{".text", 0x200, 0x1f3}}, table: winCert(certTypePKCS, []byte("x"))}, "not 8-byte aligned"},
		{"zeroed entry", synthPE{sections: twoSections, table: make([]byte, 16)}, "claims 0 bytes"},
		{"entry too long", synthPE{sections: twoSections, table: []byte{0xff, 0, 0, 0, 0, 2, 2, 0}}, "claims 255 bytes"},
		{"stray bytes", synthPE{sections: twoSections, table: append(winCert(certTypePKCS, []byte("x")), 1, 2, 3, 4)}, "4 stray bytes after its last entry"},
		{"table too short for an entry", synthPE{sections: twoSections, table: []byte{1, 2, 3, 4}}, "4 stray bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.pe.build()
			img := parseBytes(t, b)
			_, err := Sign(io.Discard, img, key, SignOptions{Certificate: cert})
			if !errors.Is(err, ErrNotPE) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Replace") {
				t.Fatalf("appending: %v; want ErrNotPE saying %q and Replace", err, tc.want)
			}
			t.Log(err)
			var out bytes.Buffer
			d, err := Sign(&out, img, key, SignOptions{Certificate: cert, Replace: true})
			if err != nil {
				t.Fatal(err)
			}
			checkSignedBytes(t, b, out.Bytes(), d)
		})
	}
}

// TestRefusals feeds Parse what is not a signable PE image.
func TestRefusals(t *testing.T) {
	random := make([]byte, 4096)
	rand.Read(random)
	random[0] = 'R'
	dos := make([]byte, 128)
	copy(dos, "MZ")
	dos[0x3c] = 0x40
	copy(dos[0x40:], "NE")
	arm64Raw := make([]byte, 128)
	copy(arm64Raw[56:], "ARM\x64")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	elf := make([]byte, 64)
	if f, err := os.Open(self); err == nil {
		io.ReadFull(f, elf)
		f.Close()
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(twoSectionsImage())
	zw.Close()
	good := twoSectionsImage()
	withTable := synthPE{sections: twoSections, table: winCert(certTypePKCS, []byte("sig"))}

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "the file is empty"},
		{"random", random, "no MZ header (file starts with 52 "},
		{"gzip", gz.Bytes(), "gzip-compressed file, not a PE image (an arm64 Image.gz?): decompress it and sign the Image"},
		{"zstd", []byte("\x28\xb5\x2f\xfd\x00\x00\x00\x00"), "zstd-compressed"},
		{"ELF", elf, "ELF file"},
		{"arm64 Image without EFI stub", arm64Raw, "arm64 Linux Image without an EFI stub"},
		{"MS-DOS program", dos, "no PE signature at 0x40"},
		{"MZ only", []byte("MZ"), "too short for the 64-byte MS-DOS header"},
		{"PE header past the end", good[:0x80], "past the end of the file"},
		{"object file", synthPE{optSize: 1, sections: twoSections}.build(), "no optional header"},
		{"bad magic", patchU16(good, 0x80+24, 0x107), "neither PE32"},
		{"short optional header", synthPE{optSize: 80, sections: twoSections}.build(), "too short for a PE32+ header"},
		{"four directories", synthPE{ndirs: 4, sections: twoSections}.build(), "no certificate table entry (4 data directories"},
		{"section table past the end", synthPE{sizeOfHeaders: 0x10, sections: twoSections}.build()[:0x190], "the section table (2 sections at 0x188) runs past the end of the file"},
		{"headers before the section table", synthPE{sizeOfHeaders: 0x100, sections: twoSections}.build(), "SizeOfHeaders (0x100) ends before the section table"},
		{"truncated section", good[:0x500], "truncated image: section .data runs past the end of the file"},
		{"section over the headers", synthPE{sections: []synthSection{{".text", 0, 0x800}}}.build(), "overlaps the PE headers' CheckSum"},
		{"table not at the end", withTable.withAfter([]byte("trailing junk")).build(), "the certificate table is not at the end of the file"},
		{"table past the end", cut(withTable.build(), 4), "truncated image: the certificate table"},
		{"table over a section", synthPE{sections: twoSections, table: make([]byte, 16)}.overlapTable(t, 0x700), "overlaps the certificate table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(tc.data), int64(len(tc.data)))
			if !errors.Is(err, ErrNotPE) {
				t.Fatalf("Parse: %v, want ErrNotPE", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "authenticode: ") {
				t.Errorf("Parse: %v\nwant it to say %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestRefusalsRealImages refuses broken forms of the real images.
func TestRefusalsRealImages(t *testing.T) {
	dir := efiDir(t)
	kernel, err := os.ReadFile(filepath.Join(dir, "arm64/kernel.efi"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(kernel)
	zw.Close()
	shim, err := os.ReadFile(filepath.Join(dir, "amd64/shim.efi"))
	if err != nil {
		t.Fatal(err)
	}
	f := refFields(t, shim)
	signedPath := filepath.Join(t.TempDir(), "grub.efi")
	signFile(t, filepath.Join(dir, "arm64/grub.efi"), signedPath, newPKI(t, t.TempDir(), "refusals", p256), SignOptions{})
	signed := readFile(t, signedPath)
	noStub := bytes.Clone(kernel[:4096])
	copy(noStub, "\x00\x00")
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"Image.gz", gz.Bytes(), "this is a gzip-compressed file, not a PE image (an arm64 Image.gz?): decompress it and sign the Image"},
		{"truncated kernel", kernel[:10<<20], "truncated image: section .text runs past the end of the file"},
		{"kernel without EFI stub", noStub, "arm64 Linux Image without an EFI stub"},
		{"section table cut", shim[:f.checksum+0x100], "truncated image: the section table"},
		{"signed, then data appended", append(bytes.Clone(signed), "appended"...), "the certificate table is not at the end of the file"},
		{"signed, then cut", signed[:len(signed)-100], "truncated image: the certificate table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(tc.data), int64(len(tc.data)))
			if !errors.Is(err, ErrNotPE) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v\nwant ErrNotPE saying %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func twoSectionsImage() []byte { return synthPE{sections: twoSections}.build() }

func (s synthPE) withAfter(b []byte) synthPE { s.after = b; return s }

// overlapTable builds the image with its certificate table entry pointing
// at off, inside the last section, and the file ending with the table.
func (s synthPE) overlapTable(t testing.TB, off int) []byte {
	b := s.build()
	f := refFields(t, b)
	binary.LittleEndian.PutUint32(b[f.certDir:], uint32(off))
	binary.LittleEndian.PutUint32(b[f.certDir+4:], uint32(len(b)-off))
	return b
}

func patchU16(b []byte, off int, v uint16) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint16(b[off:], v)
	return b
}

func cut(b []byte, n int) []byte { return b[:len(b)-n] }

// TestSignerChecks refuses signers and certificates that cannot make an
// Authenticode signature, and signatures that do not verify.
func TestSignerChecks(t *testing.T) {
	img := parseBytes(t, twoSectionsImage())
	key, cert := synthSigner(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name   string
		signer crypto.Signer
		cert   *x509.Certificate
		want   string
	}{
		{"no signer", nil, cert, "no signer"},
		{"no certificate", key, nil, "no signer certificate"},
		{"wrong key", other, cert, "does not match the certificate"},
		{"P-384", p384, cert, "ECDSA keys on P-384 are not supported"},
		{"Ed25519", ed, cert, "Ed25519 keys are not supported"},
		{"failing signer", failingSigner{key, nil}, cert, "signing: token unplugged"},
		{"lying signer", failingSigner{key, []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}}, cert, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Sign(&out, img, tc.signer, SignOptions{Certificate: tc.cert})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Sign: %v, want an error saying %q", err, tc.want)
			}
			if errors.Is(err, ErrNotPE) {
				t.Errorf("a signer problem wraps ErrNotPE: %v", err)
			}
			if out.Len() != 0 {
				t.Errorf("Sign wrote %d bytes before failing", out.Len())
			}
		})
	}
}

// failingSigner returns an error, or a fixed signature.
type failingSigner struct {
	crypto.Signer
	sig []byte
}

func (s failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	if s.sig == nil {
		return nil, errors.New("token unplugged")
	}
	return s.sig, nil
}

// changingImage is an image that changes once Sign starts writing.
type changingImage struct {
	data    []byte
	at      int
	changed bool
}

func (c *changingImage) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(c.data).ReadAt(p, off)
}

func (c *changingImage) Write(p []byte) (int, error) {
	if !c.changed {
		c.data[c.at] ^= 0xff
		c.changed = true
	}
	return len(p), nil
}

func TestImageChangesWhileSigning(t *testing.T) {
	b := synthPE{sections: []synthSection{{".text", 0x200, 600 << 10}}}.build()
	c := &changingImage{data: b, at: len(b) - 10}
	img, err := Parse(c, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	key, cert := synthSigner(t)
	if _, err := Sign(c, img, key, SignOptions{Certificate: cert}); err == nil || !strings.Contains(err.Error(), "changed while it was being signed") {
		t.Fatalf("Sign: %v, want it to notice the change", err)
	}
}

func TestMachineString(t *testing.T) {
	for m, want := range map[Machine]string{
		MachineAMD64: "AMD64", MachineARM64: "ARM64", MachineI386: "I386", MachineRISCV64: "RISCV64",
		MachineARM: "ARM", 0x01c0: "ARM", 0x01c4: "ARM", 0x6264: "0x6264", 0: "0x0000",
	} {
		if got := m.String(); got != want {
			t.Errorf("Machine(%#x).String() = %q, want %q", uint16(m), got, want)
		}
	}
	if m := parseBytes(t, synthPE{pe32: true, sections: twoSections}.build()).Machine(); m != MachineI386 {
		t.Errorf("Machine %v", m)
	}
}

// TestSignedAttributesOrder pins the authenticated attributes: DER order,
// which is also the fixed order go-uefi (sbctl) re-encodes them in to
// verify.
func TestSignedAttributesOrder(t *testing.T) {
	content, err := indirectData(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, when := range []time.Time{time.Now(), time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC)} {
		attrs, err := signedAttributes(content, when)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		in := cryptobyte.String(attrs)
		for !in.Empty() {
			var a cryptobyte.String
			var oid encasn1.ObjectIdentifier
			if !in.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) {
				t.Fatal("malformed attributes")
			}
			got = append(got, oid.String())
		}
		want := []string{oidContentType.String(), oidSigningTime.String(), oidMessageDigest.String()}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("signing at %v: attributes %v, want %v", when, got, want)
		}
	}
}
