package secureboottest

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf16"
)

// Keys are the Secure Boot certificates to enrol. A nil PK leaves the
// firmware in setup mode, where Secure Boot is off and every image boots;
// KEK and DB are still written when given.
type Keys struct {
	PK  *x509.Certificate
	KEK *x509.Certificate
	// DB holds the certificates the firmware trusts to sign images: an
	// image is accepted when its Authenticode signature chains to one of
	// them.
	DB []*x509.Certificate
}

// OwnerGUID is the signature owner recorded with every certificate Vars
// enrols (an arbitrary GUID chosen for signet's tests).
const OwnerGUID = "692adef2-7cfe-4d41-afa3-c07f0c01c030"

// GUIDs of the edk2 variable store and of the variables written.
const (
	nvDataFvGUID          = "fff12b8d-7696-4c8b-a985-2747075b4f50"
	authVarStoreGUID      = "aaf32c78-947b-439a-a180-2e144ec37792"
	globalVariableGUID    = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	imageSecurityDBGUID   = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
	secureBootEnableGUID  = "f0a30bc7-af08-4556-99c4-001009c93a44"
	customModeGUID        = "c076ec0c-7028-4399-a072-71ee5c448b9f"
	certX509GUID          = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072"
	attrNV                = 0x01
	attrBS                = 0x02
	attrRT                = 0x04
	attrTimeBasedAuth     = 0x20
	fvSignatureOffset     = 0x28 // "_FVH"
	fvHeaderLengthOffset  = 0x30
	storeHeaderSize       = 28
	varHeaderSize         = 60 // AUTHENTICATED_VARIABLE_HEADER
	varStartID            = 0x55aa
	varStateAdded         = 0x3f
	storeFormatted        = 0x5a
	storeHealthy          = 0xfe
	authenticatedVarAttrs = attrNV | attrBS | attrRT | attrTimeBasedAuth
)

// Vars returns a variable store image for arch's firmware with keys
// enrolled: PK, KEK and db as EFI_SIGNATURE_LISTs of X.509 certificates,
// SecureBootEnable=1 when PK is set, and CustomMode=0. It starts from the
// distribution's template (see Available) and keeps its firmware volume
// and store headers; every variable the template held is dropped. Pass the
// result to Boot, which copies it, so one image serves many boots.
func Vars(arch Arch, keys Keys) ([]byte, error) {
	fw, err := find(arch)
	if err != nil {
		return nil, err
	}
	tmpl, err := os.ReadFile(fw.varsTemplate)
	if err != nil {
		return nil, err
	}
	var vars []variable
	if keys.PK != nil {
		vars = append(vars, authVar("PK", globalVariableGUID, keys.PK))
	}
	if keys.KEK != nil {
		vars = append(vars, authVar("KEK", globalVariableGUID, keys.KEK))
	}
	if len(keys.DB) > 0 {
		vars = append(vars, authVar("db", imageSecurityDBGUID, keys.DB...))
	}
	if keys.PK != nil {
		vars = append(vars, variable{name: "SecureBootEnable", guid: secureBootEnableGUID, attrs: attrNV | attrBS, data: []byte{1}})
	}
	if len(vars) > 0 {
		vars = append(vars, variable{name: "CustomMode", guid: customModeGUID, attrs: attrNV | attrBS, data: []byte{0}})
	}
	out, err := writeStore(tmpl, vars)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fw.varsTemplate, err)
	}
	return out, nil
}

type variable struct {
	name  string
	guid  string
	attrs uint32
	data  []byte
}

func authVar(name, guid string, certs ...*x509.Certificate) variable {
	var data []byte
	for _, c := range certs {
		data = append(data, SignatureList(c)...)
	}
	return variable{name: name, guid: guid, attrs: authenticatedVarAttrs, data: data}
}

// SignatureList encodes cert as an EFI_SIGNATURE_LIST holding one
// EFI_CERT_X509 entry owned by OwnerGUID: the bytes efitools'
// cert-to-efi-sig-list writes, and the data of a PK, KEK or db variable.
func SignatureList(cert *x509.Certificate) []byte {
	entry := 16 + len(cert.Raw)
	b := make([]byte, 0, 28+entry)
	b = append(b, guid(certX509GUID)...)
	b = binary.LittleEndian.AppendUint32(b, uint32(28+entry)) // SignatureListSize
	b = binary.LittleEndian.AppendUint32(b, 0)                // SignatureHeaderSize
	b = binary.LittleEndian.AppendUint32(b, uint32(entry))    // SignatureSize
	b = append(b, guid(OwnerGUID)...)
	return append(b, cert.Raw...)
}

// guid encodes a textual GUID in the EFI byte order: the first three
// fields little-endian, the last two as written.
func guid(s string) []byte {
	h, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(h) != 16 {
		panic("secureboottest: bad GUID " + s)
	}
	return []byte{h[3], h[2], h[1], h[0], h[5], h[4], h[7], h[6],
		h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]}
}

// store locates the authenticated variable store inside an edk2 NvData
// firmware volume: it returns the offset of the first variable and the
// end of the store.
func store(fv []byte) (start, end int, err error) {
	if len(fv) < 0x48+storeHeaderSize {
		return 0, 0, errors.New("too short for a firmware volume")
	}
	if string(fv[fvSignatureOffset:fvSignatureOffset+4]) != "_FVH" || !bytes.Equal(fv[0x10:0x20], guid(nvDataFvGUID)) {
		return 0, 0, errors.New("not an edk2 NvData firmware volume (all zero? use the formatted template)")
	}
	hl := int(binary.LittleEndian.Uint16(fv[fvHeaderLengthOffset:]))
	if hl < 0x48 || hl%4 != 0 || hl+storeHeaderSize > len(fv) {
		return 0, 0, fmt.Errorf("bad firmware volume header length %#x", hl)
	}
	h := fv[hl:]
	if !bytes.Equal(h[:16], guid(authVarStoreGUID)) {
		return 0, 0, errors.New("the variable store is not an authenticated variable store")
	}
	size := int(binary.LittleEndian.Uint32(h[16:]))
	if h[20] != storeFormatted || h[21] != storeHealthy {
		return 0, 0, fmt.Errorf("variable store format %#x state %#x, want %#x %#x", h[20], h[21], storeFormatted, storeHealthy)
	}
	if size < storeHeaderSize || hl+size > len(fv) {
		return 0, 0, fmt.Errorf("bad variable store size %#x", size)
	}
	return hl + storeHeaderSize, hl + size, nil
}

// writeStore returns a copy of the template fv whose variable store holds
// exactly vars, each an added AUTHENTICATED_VARIABLE_HEADER record (zero
// monotonic count, timestamp and public key index) followed by its
// NUL-terminated UTF-16LE name and its data, records 4-byte aligned; the
// rest of the store is erased flash (0xFF).
func writeStore(fv []byte, vars []variable) ([]byte, error) {
	start, end, err := store(fv)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(fv)
	body := out[start:end]
	for i := range body {
		body[i] = 0xff
	}
	off := 0
	for _, v := range vars {
		name := utf16le(v.name)
		rec := make([]byte, 0, varHeaderSize+len(name)+len(v.data))
		rec = binary.LittleEndian.AppendUint16(rec, varStartID)
		rec = append(rec, varStateAdded, 0)
		rec = binary.LittleEndian.AppendUint32(rec, v.attrs)
		rec = binary.LittleEndian.AppendUint64(rec, 0) // MonotonicCount
		rec = append(rec, make([]byte, 16)...)         // TimeStamp (EFI_TIME)
		rec = binary.LittleEndian.AppendUint32(rec, 0) // PubKeyIndex
		rec = binary.LittleEndian.AppendUint32(rec, uint32(len(name)))
		rec = binary.LittleEndian.AppendUint32(rec, uint32(len(v.data)))
		rec = append(rec, guid(v.guid)...)
		rec = append(rec, name...)
		rec = append(rec, v.data...)
		if off+len(rec) > len(body) {
			return nil, fmt.Errorf("variables do not fit in the %d-byte store", len(body))
		}
		copy(body[off:], rec)
		off = (off + len(rec) + 3) &^ 3
	}
	return out, nil
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return append(b, 0, 0)
}
