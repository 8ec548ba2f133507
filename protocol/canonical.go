package protocol

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The functions in this file write protocol items in the exact chunk layout
// of the reference bridge (§2.5): one chunk per item, payloads in chunks of
// canonicalPayloadChunk bytes ending exactly at the end of the payload. A
// bridge must reproduce this layout because the Rust v1 client depends on
// it; endpoints do not need it.

// WriteCanonicalRequest forwards a request to the server as the reference
// bridge does: R1‖R2 exactly as h holds them in one chunk, the u64 n in one
// chunk, then n payload bytes from payload in chunks of at most 4096
// bytes. n is normally h.PayloadLen(); a bridge that fetched a sign-rpm from
// Koji passes the fetched length (§4.2 step 8). It returns an error wrapping
// io.ErrUnexpectedEOF if payload has fewer than n bytes.
func WriteCanonicalRequest(w *ChunkWriter, h *RequestHeader, n uint64, payload io.Reader) error {
	if err := w.WriteChunk(Outer, h.head); err != nil {
		return err
	}
	return writeCanonicalData(w, n, payload)
}

func writeCanonicalData(w *ChunkWriter, n uint64, payload io.Reader) error {
	if err := w.WriteChunk(Outer, binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return err
	}
	if n > 0 && payload == nil {
		return fmt.Errorf("protocol: payload of %d bytes but no payload reader", n)
	}
	return w.writeChunked(Outer, payload, n, canonicalPayloadChunk)
}

// WriteCanonicalPayload writes a payload section as the reference bridge
// does: the u64 n in one chunk, n bytes from data in chunks of at most 4096
// bytes, and mac in one chunk. mac is forwarded as given (the bridge cannot
// compute MACs); it must be macSize bytes. Passing n = 0 and the server's
// MAC is the koji-only case of §6.5.
func WriteCanonicalPayload(w *ChunkWriter, n uint64, data io.Reader, mac []byte) error {
	if len(mac) != macSize {
		return fmt.Errorf("protocol: payload MAC must be %d bytes, got %d", macSize, len(mac))
	}
	if err := writeCanonicalData(w, n, data); err != nil {
		return err
	}
	return w.WriteChunk(Outer, mac)
}

// WriteCanonicalItem relays a reply, sub-request or sub-reply in the
// reference layout: header (Y1‖Y2‖Y3, Q1‖Q2 or A1‖A2, from the header's
// Bytes method) in one chunk, then the payload section read from p, a relay
// PayloadReader positioned at its start: u64, payload chunks, and the MAC p
// read from the wire, each as in WriteCanonicalPayload. It refuses an empty
// header.
func WriteCanonicalItem(w *ChunkWriter, header []byte, p *PayloadReader) error {
	if err := w.WriteChunk(Outer, header); err != nil {
		return err
	}
	if err := writeCanonicalData(w, p.Remaining(), p); err != nil {
		return err
	}
	if err := p.Finish(); err != nil {
		return err
	}
	mac := p.MAC()
	if mac == nil {
		return fmt.Errorf("protocol: %s MAC was not read", p.what)
	}
	return w.WriteChunk(Outer, mac)
}
