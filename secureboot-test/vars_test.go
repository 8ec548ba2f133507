package secureboottest

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"os"
	"testing"
	"unicode/utf16"

	"github.com/signet-project/signet/internal/testenv"
)

// storedVar is one record read back from a variable store.
type storedVar struct {
	name  string
	guid  []byte
	state byte
	attrs uint32
	data  []byte
}

// records parses the records of an edk2 authenticated variable store the
// way the firmware walks it, and returns them with the offset after the
// last one.
func records(t *testing.T, fv []byte) ([]storedVar, int) {
	t.Helper()
	start, end, err := store(fv)
	if err != nil {
		t.Fatal(err)
	}
	var vars []storedVar
	off := start
	for off+varHeaderSize <= end && binary.LittleEndian.Uint16(fv[off:]) == varStartID {
		h := fv[off:]
		nameSize := int(binary.LittleEndian.Uint32(h[36:]))
		dataSize := int(binary.LittleEndian.Uint32(h[40:]))
		if nameSize < 2 || nameSize%2 != 0 || off+varHeaderSize+nameSize+dataSize > end {
			t.Fatalf("variable at %#x: bad sizes %d, %d", off, nameSize, dataSize)
		}
		u := make([]uint16, nameSize/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(h[varHeaderSize+2*i:])
		}
		if u[len(u)-1] != 0 {
			t.Fatalf("variable at %#x: name not NUL-terminated", off)
		}
		vars = append(vars, storedVar{
			name:  string(utf16.Decode(u[:len(u)-1])),
			guid:  h[44:60],
			state: h[2],
			attrs: binary.LittleEndian.Uint32(h[4:]),
			data:  h[varHeaderSize+nameSize : varHeaderSize+nameSize+dataSize],
		})
		off = (off + varHeaderSize + nameSize + dataSize + 3) &^ 3
	}
	return vars, off
}

// readStore is records for a store Vars wrote: it also checks that the
// rest of the store is erased.
func readStore(t *testing.T, fv []byte) []storedVar {
	t.Helper()
	vars, off := records(t, fv)
	_, end, _ := store(fv)
	for i := off; i < end; i++ {
		if fv[i] != 0xff {
			t.Fatalf("store not erased after the last variable: byte %#x at %#x", fv[i], i)
		}
	}
	return vars
}

func TestVars(t *testing.T) {
	ca := newSigner(t, "ours").ca
	db2 := newSigner(t, "second").ca
	for _, arch := range []Arch{AMD64, ARM64} {
		t.Run(string(arch), func(t *testing.T) {
			if err := Available(arch); err != nil {
				testenv.Unavailable(t, "%v", err)
			}
			fw, _ := find(arch)
			tmpl, err := os.ReadFile(fw.varsTemplate)
			if err != nil {
				t.Fatal(err)
			}
			start, end, _ := store(tmpl)

			empty, err := Vars(arch, Keys{})
			if err != nil {
				t.Fatal(err)
			}
			if vs := readStore(t, empty); len(vs) != 0 {
				t.Errorf("setup-mode store holds %d variables, want none", len(vs))
			}

			fv, err := Vars(arch, Keys{PK: ca, KEK: ca, DB: []*x509.Certificate{ca, db2}})
			if err != nil {
				t.Fatal(err)
			}
			if len(fv) != len(tmpl) || !bytes.Equal(fv[:start], tmpl[:start]) || !bytes.Equal(fv[end:], tmpl[end:]) {
				t.Fatal("Vars changed the template outside the variable store")
			}
			want := []struct {
				name, guid string
				attrs      uint32
				data       []byte
			}{
				{"PK", globalVariableGUID, 0x27, SignatureList(ca)},
				{"KEK", globalVariableGUID, 0x27, SignatureList(ca)},
				{"db", imageSecurityDBGUID, 0x27, append(SignatureList(ca), SignatureList(db2)...)},
				{"SecureBootEnable", secureBootEnableGUID, 0x03, []byte{1}},
				{"CustomMode", customModeGUID, 0x03, []byte{0}},
			}
			got := readStore(t, fv)
			if len(got) != len(want) {
				t.Fatalf("%d variables, want %d", len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				if g.name != w.name || !bytes.Equal(g.guid, guid(w.guid)) || g.state != varStateAdded || g.attrs != w.attrs || !bytes.Equal(g.data, w.data) {
					t.Errorf("variable %d: %q state %#x attrs %#x, %d bytes; want %q %#x %#x, %d bytes",
						i, g.name, g.state, g.attrs, len(g.data), w.name, varStateAdded, w.attrs, len(w.data))
				}
			}
		})
	}
}

// TestSignatureList checks the encoding against a distribution's own: the
// PK that Debian enrolled in its Microsoft-key OVMF template.
func TestSignatureList(t *testing.T) {
	const msVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
	fv, err := os.ReadFile(msVars)
	if err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	var pk []byte
	vars, _ := records(t, fv)
	for _, v := range vars {
		if v.name == "PK" && v.state == varStateAdded {
			pk = v.data
		}
	}
	if pk == nil {
		t.Fatalf("%s has no PK", msVars)
	}
	// One list, one entry: 28-byte list header, 16-byte owner, DER.
	cert, err := x509.ParseCertificate(pk[28+16:])
	if err != nil {
		t.Fatalf("parsing the PK certificate: %v", err)
	}
	got := SignatureList(cert)
	want := bytes.Clone(pk)
	copy(want[28:44], guid(OwnerGUID)) // the owner is ours
	if !bytes.Equal(got, want) {
		t.Errorf("SignatureList differs from Debian's PK list:\n got %x\nwant %x", got[:64], want[:64])
	}
}

func TestVerdict(t *testing.T) {
	const disk = `"UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)`
	const shell = `"EFI Internal Shell" from Fv(64074AFE-340A-4BE6-94BA-91B5B4D0F71E)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1)`
	for _, c := range []struct {
		log    string
		want   Verdict
		status string
	}{
		{"BdsDxe: loading Boot0001 " + disk + "\nBdsDxe: starting Boot0001 " + disk + "\nWelcome to GRUB!\n", Accepted, ""},
		{"BdsDxe: loading Boot0001 " + disk + "\nBdsDxe: failed to load Boot0001 " + disk + ": Access Denied\n", Refused, "Access Denied"},
		{"BdsDxe: failed to load Boot0001 " + disk + ": Security Violation\n", Refused, "Security Violation"},
		{"BdsDxe: failed to load Boot0001 " + disk + ": Load Error\n", LoadError, "Load Error"},
		{"BdsDxe: failed to load Boot0001 " + disk + ": Unsupported\n", Unsupported, "Unsupported"},
		{"BdsDxe: failed to load Boot0001 " + disk + ": Not Found\n", NoVerdict, "Not Found"},
		// The firmware's own options are not the disk.
		{"BdsDxe: loading Boot0000 " + shell + "\nBdsDxe: starting Boot0000 " + shell + "\n", NoVerdict, ""},
		{"BdsDxe: loading Boot0003 " + shell + "\nBdsDxe: failed to load Boot0003 \"EFI Internal Shell\": Not Found\n", NoVerdict, ""},
		{"BdsDxe: loading Boot0001 " + disk + "\n", NoVerdict, ""},
		{"", NoVerdict, ""},
	} {
		v, status := verdict(c.log)
		if v != c.want || status != c.status {
			t.Errorf("verdict(%q) = %v, %q; want %v, %q", c.log, v, status, c.want, c.status)
		}
	}
}

func TestClean(t *testing.T) {
	raw := "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001\r\n\r\n" +
		"\x1b[0m\x1b[30m\x1b[40mWelcome to GRUB!\r\n\x1b[02;24HGNU GRUB  version 2.06\x1b]0;title\x07 \x1b(Bdone\r\n" +
		"\xda\xc4\xc4\xbf\r\n\xb3OK\xb3\r\n\xc0\xc4\xc4\xd9\r\n"
	want := "BdsDxe: loading Boot0001\nWelcome to GRUB!\nGNU GRUB  version 2.06 done\n+--+\n|OK|\n+--+\n"
	if got := clean([]byte(raw)); got != want {
		t.Errorf("clean:\n got %q\nwant %q", got, want)
	}
}
