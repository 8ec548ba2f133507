package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Chunk framing constants (§2.1, §2.3, §2.5).
const (
	// innerBit is bit 31 of a chunk header: set for the inner stream.
	innerBit = 0x80000000

	// MaxChunkLen is the largest data length a chunk header can carry
	// (bits 0-30).
	MaxChunkLen = 0x7FFFFFFF

	// MinChunkAccept is the chunk length every receiver must accept
	// (§2.3). Chunks of the stream being read are streamed whatever their
	// length; chunks of the other stream are buffered up to
	// MuxConfig.MaxBuffered, which is never below this.
	MinChunkAccept = 1 << 20

	// canonicalPayloadChunk is the payload chunk size the reference bridge
	// writes (§2.5).
	canonicalPayloadChunk = 4096

	chunkHeaderLen = 4
)

// Stream names one of the two logical streams of an outer connection.
type Stream uint8

const (
	// Outer is the stream the bridge reads: requests, replies,
	// sub-requests and sub-replies.
	Outer Stream = 0
	// Inner carries the nested TLS session between client and server.
	Inner Stream = 1
)

// String returns "outer" or "inner".
func (s Stream) String() string {
	switch s {
	case Outer:
		return "outer"
	case Inner:
		return "inner"
	}
	return fmt.Sprintf("Stream(%d)", uint8(s))
}

func (s Stream) valid() bool { return s == Outer || s == Inner }

// ChunkHeader is the u32 that starts every chunk: the stream bit and the
// data length. A length of 0 is the stream's EOF marker.
type ChunkHeader uint32

// MakeChunkHeader returns the header for n data bytes of stream s. It
// refuses an invalid stream and n outside 0..MaxChunkLen. n = 0 gives the
// EOF marker.
func MakeChunkHeader(s Stream, n int) (ChunkHeader, error) {
	if !s.valid() {
		return 0, fmt.Errorf("protocol: invalid stream %d", s)
	}
	if n < 0 || uint64(n) > MaxChunkLen {
		return 0, &LimitError{What: "chunk length", Value: uint64(max(n, 0)), Limit: MaxChunkLen}
	}
	h := ChunkHeader(uint32(n))
	if s == Inner {
		h |= innerBit
	}
	return h, nil
}

// Stream returns the stream the chunk belongs to.
func (h ChunkHeader) Stream() Stream {
	if h&innerBit != 0 {
		return Inner
	}
	return Outer
}

// Len returns the number of data bytes that follow the header.
func (h ChunkHeader) Len() int { return int(h & MaxChunkLen) }

// IsEOF reports whether the header is an EOF marker (length 0).
func (h ChunkHeader) IsEOF() bool { return h.Len() == 0 }

// String describes the header, e.g. "inner L=203" or "outer EOF".
func (h ChunkHeader) String() string {
	if h.IsEOF() {
		return h.Stream().String() + " EOF"
	}
	return fmt.Sprintf("%s L=%d", h.Stream(), h.Len())
}

// Chunk is one whole chunk: a stream and its data. A chunk with empty Data
// is the stream's EOF marker.
type Chunk struct {
	Stream Stream
	Data   []byte
}

// IsEOF reports whether c is an EOF marker.
func (c Chunk) IsEOF() bool { return len(c.Data) == 0 }

// AppendBinary appends the chunk's wire form (header and data) to b. It
// refuses data longer than MaxChunkLen and an invalid stream.
func (c Chunk) AppendBinary(b []byte) ([]byte, error) {
	h, err := MakeChunkHeader(c.Stream, len(c.Data))
	if err != nil {
		return b, err
	}
	b = binary.BigEndian.AppendUint32(b, uint32(h))
	return append(b, c.Data...), nil
}

// isTimeout reports whether err is a net.Error timeout, after which a read
// may be retried.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ChunkReader reads raw chunks from one direction of an outer connection,
// without demultiplexing: the bridge can use it to look at or relay chunks
// exactly as they arrived. It enforces the framing rules of §2.2: at most one
// EOF marker per stream and no chunk for a stream after its EOF marker.
// Chunk data is streamed through Read, so a chunk of any length up to
// MaxChunkLen costs no memory beyond the caller's buffer.
//
// A timeout from the underlying reader (a net.Error with Timeout() true) is
// returned without losing position, and the read may be retried. Any other
// error is sticky.
type ChunkReader struct {
	r         io.Reader
	hdr       [chunkHeaderLen]byte
	hn        int // bytes of hdr read so far
	cur       ChunkHeader
	remaining int // data bytes of cur not yet read
	ended     [2]bool
	err       error
}

// NewChunkReader returns a ChunkReader reading from r.
func NewChunkReader(r io.Reader) *ChunkReader { return &ChunkReader{r: r} }

// Next returns the next chunk header. Data of the previous chunk that the
// caller did not read is skipped. At a clean end of the connection (between
// chunks) it returns io.EOF; a connection that ends inside a chunk gives an
// error wrapping io.ErrUnexpectedEOF. A chunk for a stream whose EOF marker
// was already seen is refused with a *MalformedError.
func (c *ChunkReader) Next() (ChunkHeader, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.remaining > 0 {
		if _, err := c.Read(make([]byte, min(c.remaining, 32<<10))); err != nil && err != io.EOF {
			return 0, err
		}
	}
	for c.hn < chunkHeaderLen {
		n, err := c.r.Read(c.hdr[c.hn:])
		c.hn += n
		if c.hn == chunkHeaderLen {
			break
		}
		if err == nil {
			continue
		}
		if err == io.EOF {
			if c.hn == 0 {
				c.err = io.EOF
			} else {
				c.err = fmt.Errorf("protocol: connection ended inside a chunk header (%d of 4 bytes): %w", c.hn, io.ErrUnexpectedEOF)
			}
			return 0, c.err
		}
		if !isTimeout(err) {
			c.err = err
		}
		return 0, err
	}
	c.hn = 0
	h := ChunkHeader(binary.BigEndian.Uint32(c.hdr[:]))
	s := h.Stream()
	if c.ended[s] {
		c.err = malformed("chunk stream", "%s chunk after the %s EOF marker", h, s)
		return 0, c.err
	}
	c.cur = h
	c.remaining = h.Len()
	if h.IsEOF() {
		c.ended[s] = true
	}
	return h, nil
}

// Header returns the header most recently returned by Next.
func (c *ChunkReader) Header() ChunkHeader { return c.cur }

// Remaining returns how many data bytes of the current chunk are unread.
func (c *ChunkReader) Remaining() int { return c.remaining }

// Ended reports whether the EOF marker of stream s has been read.
func (c *ChunkReader) Ended(s Stream) bool { return s.valid() && c.ended[s] }

// Read reads data of the current chunk. It returns io.EOF at the end of the
// chunk's data (call Next for the next chunk) and an error wrapping
// io.ErrUnexpectedEOF if the connection ends inside the data.
func (c *ChunkReader) Read(p []byte) (int, error) {
	if c.remaining == 0 {
		return 0, io.EOF
	}
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > c.remaining {
		p = p[:c.remaining]
	}
	n, err := c.r.Read(p)
	c.remaining -= n
	switch {
	case err == nil:
	case err == io.EOF:
		if c.remaining > 0 {
			c.err = fmt.Errorf("protocol: connection ended inside %s data, %d bytes missing: %w", c.cur, c.remaining, io.ErrUnexpectedEOF)
			return n, c.err
		}
	case isTimeout(err):
		return n, err
	default:
		c.err = err
		return n, err
	}
	return n, nil
}

// ReadChunk reads the next whole chunk. It refuses, before allocating, a
// chunk whose length exceeds maxLen with a *LimitError; the chunk's data is
// then still unread and can be streamed with Read. An EOF marker is returned
// as a Chunk with empty Data.
func (c *ChunkReader) ReadChunk(maxLen int) (Chunk, error) {
	h, err := c.Next()
	if err != nil {
		return Chunk{}, err
	}
	if h.Len() > maxLen {
		return Chunk{Stream: h.Stream()}, &LimitError{What: h.Stream().String() + " chunk length", Value: uint64(h.Len()), Limit: uint64(max(maxLen, 0))}
	}
	ch := Chunk{Stream: h.Stream()}
	if h.Len() > 0 {
		ch.Data = make([]byte, h.Len())
		if _, err := io.ReadFull(c, ch.Data); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Chunk{}, err
		}
	}
	return ch, nil
}

// ChunkWriter writes chunks to one direction of an outer connection. It is
// safe for concurrent use: each chunk is written whole, never interleaved
// with another goroutine's chunk. It enforces §2.2: no empty data chunk, at
// most one EOF marker per stream, nothing after a stream's EOF marker. After
// a failed write of the underlying writer the framing is unknown, so every
// later write returns the same error.
type ChunkWriter struct {
	mu    sync.Mutex
	w     io.Writer
	ended [2]bool
	buf   []byte
	err   error
}

// NewChunkWriter returns a ChunkWriter writing to w.
func NewChunkWriter(w io.Writer) *ChunkWriter { return &ChunkWriter{w: w} }

const coalesceLimit = 64 << 10 // header and data up to this size go out in one Write

// WriteChunk writes data as exactly one chunk of stream s. It refuses empty
// data (use WriteEOF), data longer than MaxChunkLen, and any chunk after the
// stream's EOF marker.
func (c *ChunkWriter) WriteChunk(s Stream, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: %s stream (an empty chunk would be an EOF marker)", ErrEmptyChunk, s)
	}
	h, err := MakeChunkHeader(s, len(data))
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked(h, data)
}

// WriteEOF writes the EOF marker of stream s (00000000 for outer, 80000000
// for inner). It refuses a second EOF marker for the same stream.
func (c *ChunkWriter) WriteEOF(s Stream) error {
	h, err := MakeChunkHeader(s, 0)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked(h, nil)
}

// Ended reports whether the EOF marker of stream s has been written.
func (c *ChunkWriter) Ended(s Stream) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.valid() && c.ended[s]
}

func (c *ChunkWriter) writeLocked(h ChunkHeader, data []byte) error {
	if c.err != nil {
		return c.err
	}
	s := h.Stream()
	if c.ended[s] {
		return fmt.Errorf("%w: %s chunk after the %s EOF marker", ErrStreamEnded, h, s)
	}
	if len(data) <= coalesceLimit {
		if c.buf == nil {
			c.buf = make([]byte, 0, chunkHeaderLen+coalesceLimit)
		}
		b := binary.BigEndian.AppendUint32(c.buf[:0], uint32(h))
		b = append(b, data...)
		if _, err := c.w.Write(b); err != nil {
			c.err = err
			return err
		}
	} else {
		var hb [chunkHeaderLen]byte
		binary.BigEndian.PutUint32(hb[:], uint32(h))
		if _, err := c.w.Write(hb[:]); err != nil {
			c.err = err
			return err
		}
		if _, err := c.w.Write(data); err != nil {
			c.err = err
			return err
		}
	}
	if h.IsEOF() {
		c.ended[s] = true
	}
	return nil
}

// writeChunked copies exactly n bytes from src to stream s as chunks of at
// most maxChunk bytes; the last chunk ends exactly at byte n, and n = 0
// writes nothing. It refuses maxChunk outside 1..MaxChunkLen, and returns an
// error wrapping io.ErrUnexpectedEOF if src ends early (the chunks already
// written stay written, so the connection must then be dropped).
func (c *ChunkWriter) writeChunked(s Stream, src io.Reader, n uint64, maxChunk int) error {
	if maxChunk < 1 || maxChunk > MaxChunkLen {
		return fmt.Errorf("protocol: chunk size %d outside 1..%d", maxChunk, MaxChunkLen)
	}
	buf := make([]byte, int(min(uint64(maxChunk), n, 1<<20)))
	for done := uint64(0); done < n; {
		want := int(min(uint64(len(buf)), n-done))
		k, err := io.ReadFull(src, buf[:want])
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return fmt.Errorf("protocol: %s data source ended after %d of %d bytes: %w", s, done+uint64(k), n, io.ErrUnexpectedEOF)
			}
			return err
		}
		if err := c.WriteChunk(s, buf[:k]); err != nil {
			return err
		}
		done += uint64(k)
	}
	return nil
}
