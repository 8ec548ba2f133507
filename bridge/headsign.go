package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/signet-project/signet/protocol"
)

// MaxHeadPrefix bounds the RPM headers the bridge reads for head signing
// (§7.8: the lead, signature header and main header must end within the
// first 100 MiB).
const MaxHeadPrefix = 100 << 20

var (
	rpmLeadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	rpmHeaderMagic = []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}
)

// headSigning reports the request's head-signing flag.
func headSigning(h *protocol.RequestHeader) bool {
	v, err := h.Fields().Bool("head-signing")
	return err == nil && v
}

// rpmHeadPrefix reads from r, which holds an RPM of n bytes, exactly the
// bytes that head signing sends to the server: the 96-byte lead, the
// signature header padded to 8 bytes, and the main header (§7.8). The
// bridge does not parse the package further; the server checks it.
func rpmHeadPrefix(r io.Reader, n uint64) ([]byte, error) {
	var buf bytes.Buffer
	need := func(end uint64, what string) error {
		if end > MaxHeadPrefix {
			return fmt.Errorf("RPM %s ends past the first %d bytes", what, MaxHeadPrefix)
		}
		if end > n {
			return fmt.Errorf("RPM of %d bytes ends inside its %s", n, what)
		}
		if have := uint64(buf.Len()); end > have {
			if _, err := io.CopyN(&buf, r, int64(end-have)); err != nil {
				return fmt.Errorf("reading the RPM %s: %w", what, err)
			}
		}
		return nil
	}
	header := func(at uint64, what string) (uint64, error) {
		if err := need(at+16, what); err != nil {
			return 0, err
		}
		b := buf.Bytes()[at:]
		if !bytes.Equal(b[:8], rpmHeaderMagic) {
			return 0, fmt.Errorf("RPM %s has no header magic", what)
		}
		il, dl := uint64(binary.BigEndian.Uint32(b[8:])), uint64(binary.BigEndian.Uint32(b[12:]))
		return at + 16 + 16*il + dl, nil
	}
	if err := need(96, "lead"); err != nil {
		return nil, err
	}
	if !bytes.Equal(buf.Bytes()[:4], rpmLeadMagic) {
		return nil, errors.New("not an RPM: no lead magic")
	}
	sigEnd, err := header(96, "signature header")
	if err != nil {
		return nil, err
	}
	mainEnd, err := header((sigEnd+7)&^7, "main header")
	if err != nil {
		return nil, err
	}
	if err := need(mainEnd, "main header"); err != nil {
		return nil, err
	}
	return buf.Bytes()[:mainEnd], nil
}
