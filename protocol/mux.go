package protocol

import (
	"fmt"
	"io"
	"sync"
)

// Defaults for MuxConfig.
const (
	// defaultMaxBuffered is the default bound on unread data buffered for
	// one stream while the other stream is being read.
	defaultMaxBuffered = 4 << 20
	// defaultMaxWriteChunk is the default largest chunk StreamWriter.Write
	// produces.
	defaultMaxWriteChunk = 64 << 10

	pieceSize = 32 << 10 // bytes read per step when buffering the other stream
)

// MuxConfig tunes a Mux. The zero value (or a nil *MuxConfig) gives the
// defaults.
type MuxConfig struct {
	// MaxBuffered bounds, per stream, the data read from the connection
	// but not yet consumed. It is reached only when one stream is read
	// while the peer keeps sending the other; exceeding it fails the Mux
	// with a *LimitError instead of allocating more. Values below
	// MinChunkAccept are raised to it (§2.3). Default defaultMaxBuffered.
	MaxBuffered int
	// MaxWriteChunk is the largest chunk StreamWriter.Write produces;
	// larger writes are split. Default defaultMaxWriteChunk; values above
	// MaxChunkLen are lowered to it.
	MaxWriteChunk int
}

// Mux carries the outer and the inner stream of one outer connection (C↔B
// or S↔B) in both directions (§2).
//
// Reading is pull-based: whichever stream is being read pulls chunks from
// the connection, and data that belongs to the other stream is kept, in
// arrival order and with its chunk boundaries, until that stream is read.
// Neither stream has to be read for the other to make progress, and the
// memory for such buffered data is bounded by MuxConfig.MaxBuffered. Data
// of the stream being read is streamed straight into the caller's buffer, so
// chunks of any length up to MaxChunkLen are accepted.
//
// Both streams may be read and written from different goroutines at the
// same time. The Mux does not close the connection.
type Mux struct {
	d        *demux
	cw       *ChunkWriter
	maxWrite int
	readers  [2]*StreamReader
	writers  [2]*StreamWriter
	inner    *InnerConn
	innerMu  sync.Mutex
}

// NewMux returns a Mux over rw, typically an outer *tls.Conn. cfg may be
// nil.
func NewMux(rw io.ReadWriter, cfg *MuxConfig) *Mux {
	var c MuxConfig
	if cfg != nil {
		c = *cfg
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = defaultMaxBuffered
	}
	c.MaxBuffered = max(c.MaxBuffered, MinChunkAccept)
	if c.MaxWriteChunk <= 0 {
		c.MaxWriteChunk = defaultMaxWriteChunk
	}
	c.MaxWriteChunk = min(c.MaxWriteChunk, MaxChunkLen)
	m := &Mux{
		d:        newDemux(NewChunkReader(rw), c.MaxBuffered),
		cw:       NewChunkWriter(rw),
		maxWrite: c.MaxWriteChunk,
	}
	for _, s := range []Stream{Outer, Inner} {
		m.readers[s] = &StreamReader{d: m.d, s: s}
		m.writers[s] = &StreamWriter{cw: m.cw, s: s, max: c.MaxWriteChunk}
	}
	return m
}

// Reader returns the reader of stream s (the same value on every call). It
// panics if s is not Outer or Inner.
func (m *Mux) Reader(s Stream) *StreamReader {
	if !s.valid() {
		panic(fmt.Sprintf("protocol: Mux.Reader: invalid stream %d", s))
	}
	return m.readers[s]
}

// Writer returns the writer of stream s (the same value on every call). It
// panics if s is not Outer or Inner.
func (m *Mux) Writer(s Stream) *StreamWriter {
	if !s.valid() {
		panic(fmt.Sprintf("protocol: Mux.Writer: invalid stream %d", s))
	}
	return m.writers[s]
}

// ChunkWriter returns the chunk-level writer shared by both StreamWriters,
// for writing exact chunk layouts (§2.5) and relaying chunks verbatim.
func (m *Mux) ChunkWriter() *ChunkWriter { return m.cw }

// Drain discards all further data of both streams and reads from the
// connection until every stream in until has ended, by its EOF marker or by
// the end of the connection; with no argument it reads until the
// connection ends. This is the "drain before close" of §2.7 that keeps
// unread data from turning a close into a TCP RST. It returns nil when the
// streams or the connection ended cleanly, and the read error otherwise.
func (m *Mux) Drain(until ...Stream) error { return m.d.drain(until) }

// StreamReader reads one stream of a Mux. It implements io.Reader.
type StreamReader struct {
	d *demux
	s Stream
}

// Stream returns the stream this reader reads.
func (r *StreamReader) Stream() Stream { return r.s }

// Read reads stream data, joining chunks (§2.2). It returns io.EOF after
// the stream's EOF marker or, if the connection ended cleanly without one,
// at the end of the connection (EndedByMarker tells which). A connection
// that ends inside a chunk gives an error wrapping io.ErrUnexpectedEOF.
// After Discard it returns an error wrapping ErrStreamEnded.
func (r *StreamReader) Read(p []byte) (int, error) { return r.d.read(r.s, p) }

// ReadChunk returns the data of the next chunk of the stream, with the
// chunk boundary it had on the wire, so that a relay can forward it
// verbatim (§2.5, §5.1). A chunk longer than MinChunkAccept is returned in
// pieces of at most MinChunkAccept bytes, which a relay may forward as
// separate chunks (§5.1). At the EOF marker it returns nil, io.EOF. If Read
// consumed part of a chunk, ReadChunk returns the rest of it.
func (r *StreamReader) ReadChunk() ([]byte, error) { return r.d.readChunk(r.s) }

// Discard drops the stream's buffered data and makes the Mux drop its
// future data instead of buffering it; later reads return an error wrapping
// ErrStreamEnded. Use it for a stream the caller will not read again, such
// as the inner stream after the inner session is closed.
func (r *StreamReader) Discard() { r.d.discard(r.s) }

// EndedByMarker reports whether the stream has ended with its EOF marker
// (as opposed to the end of the connection, or not at all yet). The marker
// counts once it has been read from the connection, even if data before it
// is still buffered.
func (r *StreamReader) EndedByMarker() bool { return r.d.marker(r.s) }

// Buffered returns the number of bytes of the stream read from the
// connection but not yet consumed.
func (r *StreamReader) Buffered() int { return r.d.buffered(r.s) }

// StreamWriter writes one stream of a Mux. It implements io.WriteCloser.
type StreamWriter struct {
	cw  *ChunkWriter
	s   Stream
	max int
}

// Stream returns the stream this writer writes.
func (w *StreamWriter) Stream() Stream { return w.s }

// Write writes p as one or more chunks of at most MuxConfig.MaxWriteChunk
// bytes. An empty p writes nothing (§2.2: no empty data chunk). It refuses
// writes after Close.
func (w *StreamWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), w.max)
		if err := w.cw.WriteChunk(w.s, p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// Close writes the stream's EOF marker. A second Close does nothing.
func (w *StreamWriter) Close() error {
	w.cw.mu.Lock()
	defer w.cw.mu.Unlock()
	if w.cw.ended[w.s] {
		return nil
	}
	h, _ := MakeChunkHeader(w.s, 0)
	return w.cw.writeLocked(h, nil)
}

// demux is the reading half of a Mux.
type demux struct {
	cr     *ChunkReader
	maxBuf int

	mu      sync.Mutex
	cond    sync.Cond
	busy    bool  // a goroutine is reading from cr
	err     error // terminal read error; io.EOF = connection ended cleanly
	st      [2]streamState
	scratch []byte
}

type streamState struct {
	q       []segment // buffered data, oldest first
	qlen    int       // bytes in q
	marker  bool      // EOF marker read from the connection (it follows q)
	discard bool
}

// segment is buffered data of one chunk (or a piece of a long chunk).
type segment struct {
	b   []byte
	end bool // b ends its chunk
}

func newDemux(cr *ChunkReader, maxBuf int) *demux {
	d := &demux{cr: cr, maxBuf: maxBuf}
	d.cond.L = &d.mu
	return d
}

var errDiscarded = fmt.Errorf("%w: the stream was discarded", ErrStreamEnded)

// step does one unit of reading from the connection on behalf of stream
// want (or of nobody, want = -1). It must be called with d.mu held and
// d.busy false; it releases d.mu while reading. If direct is non-nil and the
// current chunk belongs to want with nothing of want buffered, data is read
// straight into direct and the count returned.
func (d *demux) step(want int, direct []byte) (int, error) {
	d.busy = true
	defer func() {
		d.busy = false
		d.cond.Broadcast()
	}()
	cr := d.cr
	if cr.Remaining() == 0 {
		d.mu.Unlock()
		h, err := cr.Next()
		d.mu.Lock()
		if err != nil {
			if !isTimeout(err) {
				d.err = err
			}
			return 0, err
		}
		if h.IsEOF() {
			d.st[h.Stream()].marker = true
		}
		return 0, nil
	}
	s := cr.Header().Stream()
	st := &d.st[s]
	if int(s) == want && direct != nil && len(st.q) == 0 && !st.discard {
		p := direct[:min(len(direct), cr.Remaining())]
		d.mu.Unlock()
		n, err := cr.Read(p)
		d.mu.Lock()
		if err != nil && err != io.EOF {
			if !isTimeout(err) {
				d.err = err
			}
			return n, err
		}
		return n, nil
	}
	k := min(cr.Remaining(), pieceSize)
	var buf []byte
	if st.discard {
		if d.scratch == nil {
			d.scratch = make([]byte, pieceSize)
		}
		buf = d.scratch[:k]
	} else {
		if st.qlen+k > d.maxBuf {
			d.err = &LimitError{What: fmt.Sprintf("unread %s stream data buffered (bytes)", s), Value: uint64(st.qlen + k), Limit: uint64(d.maxBuf)}
			return 0, d.err
		}
		buf = make([]byte, k)
	}
	d.mu.Unlock()
	n, err := io.ReadFull(cr, buf)
	d.mu.Lock()
	if n > 0 && !st.discard {
		end := cr.Remaining() == 0
		if last := len(st.q) - 1; last >= 0 && !st.q[last].end && len(st.q[last].b)+n <= MinChunkAccept {
			st.q[last].b = append(st.q[last].b, buf[:n]...)
			st.q[last].end = end
		} else {
			st.q = append(st.q, segment{b: buf[:n:n], end: end})
		}
		st.qlen += n
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if !isTimeout(err) {
			d.err = err
		}
		return 0, err
	}
	return 0, nil
}

func (d *demux) read(s Stream, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &d.st[s]
	for {
		if st.discard {
			return 0, errDiscarded
		}
		if len(st.q) > 0 {
			seg := &st.q[0]
			n := copy(p, seg.b)
			seg.b = seg.b[n:]
			st.qlen -= n
			if len(seg.b) == 0 {
				st.q[0] = segment{}
				st.q = st.q[1:]
			}
			return n, nil
		}
		if st.marker {
			return 0, io.EOF
		}
		if d.err != nil {
			return 0, d.err
		}
		if d.busy {
			d.cond.Wait()
			continue
		}
		n, err := d.step(int(s), p)
		if n > 0 {
			return n, nil
		}
		if err != nil && d.err == nil {
			return 0, err // a timeout: the caller may retry
		}
	}
}

func (d *demux) readChunk(s Stream) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &d.st[s]
	for {
		if st.discard {
			return nil, errDiscarded
		}
		if len(st.q) > 0 {
			seg := st.q[0]
			// A segment is whole once its chunk ended, once a later
			// segment exists (it cannot grow any more), or once it
			// reached the piece limit.
			if seg.end || len(st.q) > 1 || len(seg.b) >= MinChunkAccept || d.err != nil {
				st.q[0] = segment{}
				st.q = st.q[1:]
				st.qlen -= len(seg.b)
				return seg.b, nil
			}
		} else if st.marker {
			return nil, io.EOF
		} else if d.err != nil {
			return nil, d.err
		}
		if d.busy {
			d.cond.Wait()
			continue
		}
		if _, err := d.step(int(s), nil); err != nil && d.err == nil {
			return nil, err
		}
	}
}

func (d *demux) discard(s Stream) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.discardLocked(s)
}

// discardLocked drops stream s's buffered data and whatever arrives for it
// later; d.mu is held.
func (d *demux) discardLocked(s Stream) {
	st := &d.st[s]
	st.discard = true
	st.q = nil
	st.qlen = 0
	d.cond.Broadcast()
}

func (d *demux) marker(s Stream) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st[s].marker
}

func (d *demux) buffered(s Stream) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st[s].qlen
}

func (d *demux) drain(until []Stream) error {
	for _, s := range until {
		if !s.valid() {
			return fmt.Errorf("protocol: Drain: invalid stream %d", s)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.st {
		d.st[s].discard = true
		d.st[s].q = nil
		d.st[s].qlen = 0
	}
	d.cond.Broadcast()
	for {
		if len(until) > 0 {
			done := true
			for _, s := range until {
				done = done && d.st[s].marker
			}
			if done {
				return nil
			}
		}
		if d.err != nil {
			if d.err == io.EOF {
				return nil
			}
			return d.err
		}
		if d.busy {
			d.cond.Wait()
			continue
		}
		if _, err := d.step(-1, nil); err != nil && d.err == nil {
			return err
		}
	}
}
