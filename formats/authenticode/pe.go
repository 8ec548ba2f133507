package authenticode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ErrNotPE is wrapped by every refusal of a file that is not a signable PE
// image: another kind of file, a truncated or malformed image, or a
// certificate table this package cannot extend. The error's own text says
// what the file is and what to do about it.
var ErrNotPE = errors.New("authenticode: not a signable PE image")

// notPEError is a refusal with its own message that matches ErrNotPE.
type notPEError struct{ msg string }

func (e *notPEError) Error() string { return "authenticode: " + e.msg }
func (e *notPEError) Unwrap() error { return ErrNotPE }

func notPE(format string, args ...any) error {
	return &notPEError{msg: fmt.Sprintf(format, args...)}
}

// Machine is the COFF header's machine field.
type Machine uint16

// The machines of UEFI images.
const (
	MachineI386    Machine = 0x014c
	MachineARM     Machine = 0x01c2 // Thumb/ARM interworking, as UEFI uses
	MachineAMD64   Machine = 0x8664
	MachineARM64   Machine = 0xaa64
	MachineRISCV64 Machine = 0x5064
)

// String returns the machine's usual name, or its value in hex.
func (m Machine) String() string {
	switch m {
	case MachineAMD64:
		return "AMD64"
	case MachineARM64:
		return "ARM64"
	case MachineI386:
		return "I386"
	case MachineRISCV64:
		return "RISCV64"
	case 0x01c0, MachineARM, 0x01c4: // ARM, ARMTHUMB_MIXED, ARMNT
		return "ARM"
	}
	return fmt.Sprintf("0x%04x", uint16(m))
}

// Layout constants of the PE/COFF format.
const (
	dosHeaderSize     = 64
	coffHeaderSize    = 20
	sectionHeaderSize = 40
	magicPE32         = 0x10b
	magicPE32Plus     = 0x20b
	certDirIndex      = 4
	certEntryHeader   = 8 // WIN_CERTIFICATE: dwLength, wRevision, wCertificateType
	certRevision2     = 0x0200
	certTypePKCS      = 0x0002
	// The certificate directory holds 32-bit file offsets and sizes.
	maxImageSize = math.MaxUint32
)

type section struct {
	name     string
	off, end int64
}

// region is a range [off, end) of the image that the Authenticode digest
// covers. Offsets at or past dataEnd read as zeros (the 8-byte padding).
type region struct{ off, end int64 }

// Image is a parsed PE32 or PE32+ image. It keeps the io.ReaderAt it was
// parsed from and reads the image's contents from it on demand, so the
// reader must stay open and unchanged while the Image is in use.
type Image struct {
	r    io.ReaderAt
	size int64

	machine       Machine
	pe32Plus      bool
	checksumOff   int64 // file offset of the optional header's CheckSum
	certDirOff    int64 // file offset of the certificate table directory entry
	sizeOfHeaders int64
	sections      []section // with raw data, sorted by file offset
	names         []string  // every section's name, in table order

	certOff, certSize int64 // the existing certificate table, if certSize > 0
	dataEnd           int64 // end of what is signed: certOff, or size
	paddedEnd         int64 // dataEnd rounded up to 8
	regions           []region
	sequential        bool // regions sorted and disjoint: one pass reads them
}

// Parse reads the headers and the section table of a PE32 or PE32+ image of
// size bytes from r and checks that every range the Authenticode digest
// covers lies inside the file. It reads nothing else: the sections are read
// later, by Digest and Sign.
func Parse(r io.ReaderAt, size int64) (*Image, error) {
	if size < 0 {
		return nil, fmt.Errorf("authenticode: negative image size %d", size)
	}
	if size == 0 {
		return nil, notPE("the file is empty, not a PE image")
	}
	head := make([]byte, min(size, 4096))
	if err := readFull(r, head, 0); err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(head, []byte("MZ")) {
		return nil, sniff(head)
	}
	if size < dosHeaderSize {
		return nil, notPE("truncated image: the file is %d bytes, too short for the %d-byte MS-DOS header", size, dosHeaderSize)
	}
	img := &Image{r: r, size: size}
	if size > maxImageSize {
		return nil, notPE("the file is %d bytes: a PE image cannot be larger than 4 GiB", size)
	}
	peOff := int64(binary.LittleEndian.Uint32(head[0x3c:]))
	if peOff+4+coffHeaderSize > size {
		return nil, notPE("not a PE image: the MZ header points to a PE header at %#x, past the end of the file (%d bytes); an MS-DOS program or a truncated image?", peOff, size)
	}
	coff := make([]byte, 4+coffHeaderSize)
	if err := readFull(r, coff, peOff); err != nil {
		return nil, err
	}
	if !bytes.Equal(coff[:4], []byte("PE\x00\x00")) {
		return nil, notPE("not a PE image: MZ header but no PE signature at %#x (found % x); an MS-DOS program?", peOff, coff[:4])
	}
	img.machine = Machine(binary.LittleEndian.Uint16(coff[4:]))
	nsec := int64(binary.LittleEndian.Uint16(coff[6:]))
	optSize := int64(binary.LittleEndian.Uint16(coff[20:]))
	optOff := peOff + 4 + coffHeaderSize

	if optSize < 2 {
		return nil, notPE("not a signable image: no optional header (an object file, not an executable image?)")
	}
	if optOff+optSize > size {
		return nil, notPE("truncated image: the optional header (%d bytes at %#x) runs past the end of the file (%d bytes)", optSize, optOff, size)
	}
	opt := make([]byte, optSize)
	if err := readFull(r, opt, optOff); err != nil {
		return nil, err
	}
	var dirBase int64
	switch magic := binary.LittleEndian.Uint16(opt); magic {
	case magicPE32:
		dirBase = 96
	case magicPE32Plus:
		dirBase = 112
		img.pe32Plus = true
	default:
		return nil, notPE("not a signable image: optional header magic %#04x is neither PE32 (0x10b) nor PE32+ (0x20b)", magic)
	}
	if optSize < dirBase {
		return nil, notPE("malformed image: the optional header is %d bytes, too short for a %s header (%d)", optSize, img.kind(), dirBase)
	}
	ndirs := int64(binary.LittleEndian.Uint32(opt[dirBase-4:]))
	certDir := dirBase + certDirIndex*8
	if ndirs <= certDirIndex || optSize < certDir+8 {
		return nil, notPE("the image has no certificate table entry (%d data directories, optional header %d bytes), so it cannot carry a signature: relink it with the standard 16 data directories", ndirs, optSize)
	}
	img.checksumOff = optOff + 64
	img.certDirOff = optOff + certDir
	img.sizeOfHeaders = int64(binary.LittleEndian.Uint32(opt[60:]))

	secOff := optOff + optSize
	secEnd := secOff + nsec*sectionHeaderSize
	if secEnd > size {
		return nil, notPE("truncated image: the section table (%d sections at %#x) runs past the end of the file (it ends at %#x, the file at %#x)", nsec, secOff, secEnd, size)
	}
	if img.sizeOfHeaders < secEnd {
		return nil, notPE("malformed image: SizeOfHeaders (%#x) ends before the section table does (%#x)", img.sizeOfHeaders, secEnd)
	}
	if img.sizeOfHeaders > size {
		return nil, notPE("truncated image: the headers (SizeOfHeaders %#x) run past the end of the file (%#x)", img.sizeOfHeaders, size)
	}

	// The certificate table: its address is a file offset.
	certVA := int64(binary.LittleEndian.Uint32(opt[certDir:]))
	img.certSize = int64(binary.LittleEndian.Uint32(opt[certDir+4:]))
	img.dataEnd = size
	if img.certSize > 0 {
		img.certOff = certVA
		switch end := certVA + img.certSize; {
		case certVA == 0:
			return nil, notPE("malformed image: the certificate table entry has a size (%d) but no address", img.certSize)
		case end > size:
			return nil, notPE("truncated image: the certificate table (%#x bytes at %#x) runs past the end of the file (%#x)", img.certSize, certVA, size)
		case end != size:
			return nil, notPE("the certificate table is not at the end of the file (it ends at %#x, the file at %#x): the %d bytes after it would be neither hashed nor signed: remove them, or sign the image as it was before they were appended", end, size, size-end)
		case certVA < img.sizeOfHeaders:
			return nil, notPE("malformed image: the certificate table at %#x overlaps the headers (which end at %#x)", certVA, img.sizeOfHeaders)
		}
		img.dataEnd = certVA
	}
	img.paddedEnd = align8(img.dataEnd)

	table := make([]byte, secEnd-secOff)
	if err := readFull(r, table, secOff); err != nil {
		return nil, err
	}
	sumHashed := img.sizeOfHeaders
	for i := int64(0); i < nsec; i++ {
		h := table[i*sectionHeaderSize : (i+1)*sectionHeaderSize]
		name := sectionName(h[:8])
		img.names = append(img.names, name)
		rawSize := int64(binary.LittleEndian.Uint32(h[16:]))
		rawOff := int64(binary.LittleEndian.Uint32(h[20:]))
		if rawSize == 0 {
			continue
		}
		end := rawOff + rawSize
		switch {
		case end > size:
			return nil, notPE("truncated image: section %s runs past the end of the file (its data is %#x bytes at %#x and ends at %#x, the file at %#x)", shown(name), rawSize, rawOff, end, size)
		case end > img.dataEnd:
			return nil, notPE("malformed image: section %s (%#x..%#x) overlaps the certificate table at %#x", shown(name), rawOff, end, img.certOff)
		case rawOff < img.checksumOff+4 && end > img.checksumOff, rawOff < img.certDirOff+8 && end > img.certDirOff:
			// The digest would cover fields that signing rewrites.
			return nil, notPE("malformed image: section %s (%#x..%#x) overlaps the PE headers' CheckSum or certificate table entry, which signing rewrites", shown(name), rawOff, end)
		}
		img.sections = append(img.sections, section{name: name, off: rawOff, end: end})
		sumHashed += rawSize
	}
	sort.SliceStable(img.sections, func(i, j int) bool { return img.sections[i].off < img.sections[j].off })

	// What the digest covers, in the order it is hashed (Microsoft's
	// "Calculating the PE Image Hash"): the headers less the CheckSum and
	// the certificate table entry, each section with raw data in file
	// order, then what lies after the sections' total size up to the
	// certificate table, with the zero padding to 8 bytes that Sign adds.
	img.addRegion(0, img.checksumOff)
	img.addRegion(img.checksumOff+4, img.certDirOff)
	img.addRegion(img.certDirOff+8, img.sizeOfHeaders)
	for _, s := range img.sections {
		img.addRegion(s.off, s.end)
	}
	img.addRegion(sumHashed, img.paddedEnd)
	img.sequential = true
	for i := 1; i < len(img.regions); i++ {
		if img.regions[i].off < img.regions[i-1].end {
			img.sequential = false
		}
	}
	return img, nil
}

func (img *Image) addRegion(off, end int64) {
	if off < end {
		img.regions = append(img.regions, region{off, end})
	}
}

func (img *Image) kind() string {
	if img.pe32Plus {
		return "PE32+"
	}
	return "PE32"
}

// Machine returns the machine the image is built for.
func (img *Image) Machine() Machine { return img.machine }

// Size returns the size of the image as parsed, in bytes.
func (img *Image) Size() int64 { return img.size }

// HasSection reports whether the section table names a section name (such
// as ".sbat", which shim requires of what it loads).
func (img *Image) HasSection(name string) bool {
	for _, n := range img.names {
		if n == name {
			return true
		}
	}
	return false
}

func sectionName(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// shown is a section name as error messages print it.
func shown(name string) string {
	for _, c := range name {
		if c < ' ' || c > '~' {
			return strconv.Quote(name)
		}
	}
	return name
}

func align8(n int64) int64 { return (n + 7) &^ 7 }

// readFull reads len(p) bytes at off, or fails.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("authenticode: reading %d bytes at %#x: %w", len(p), off, err)
}

// sniff names what a file without an MZ header is, and what to do.
func sniff(head []byte) error {
	has := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	compressed := func(what, ext string) error {
		return notPE("this is a %s-compressed file, not a PE image (an arm64 Image.%s?): decompress it and sign the Image", what, ext)
	}
	switch {
	case has(0, "\x1f\x8b"):
		return compressed("gzip", "gz")
	case has(0, "\x28\xb5\x2f\xfd"):
		return compressed("zstd", "zst")
	case has(0, "\xfd7zXZ\x00"):
		return compressed("xz", "xz")
	case has(0, "BZh"):
		return compressed("bzip2", "bz2")
	case has(0, "\x04\x22\x4d\x18"), has(0, "\x02\x21\x4c\x18"):
		return compressed("LZ4", "lz4")
	case has(0, "\x5d\x00\x00"):
		return compressed("LZMA", "lzma")
	case has(56, "ARM\x64"):
		return notPE("this is an arm64 Linux Image without an EFI stub (no MZ header): build the kernel with CONFIG_EFI_STUB=y and sign that Image")
	case has(48, "RISCV\x00\x00\x00"), has(56, "RSC\x05"):
		return notPE("this is a RISC-V Linux Image without an EFI stub (no MZ header): build the kernel with CONFIG_EFI_STUB=y and sign that Image")
	case has(0, "\x7fELF"):
		return notPE("this is an ELF file, not a PE image (a vmlinux or an unconverted .so?): sign the EFI image built from it (for a kernel, the Image or bzImage with the EFI stub)")
	case has(0, "\xed\xab\xee\xdb"):
		return notPE("this is an RPM package, not a PE image: extract the EFI image from it (rpm2cpio | cpio -id) and sign that")
	case has(0, "!<arch>\n"):
		return notPE("this is an ar archive (a .deb?), not a PE image: extract the EFI image from it (dpkg-deb -x) and sign that")
	case has(0, "PK\x03\x04"):
		return notPE("this is a zip archive, not a PE image: extract the EFI image from it and sign that")
	case has(0, "070701"), has(0, "070702"):
		return notPE("this is a cpio archive (an initramfs?), not a PE image")
	case has(0, "-----BEGIN"):
		return notPE("this is PEM text, not a PE image")
	}
	n := min(len(head), 8)
	return notPE("not a PE image: no MZ header (file starts with % x%s)", head[:n], strings.Repeat(" …", min(1, len(head)-n)))
}
