package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func hdr(s Stream, n int) []byte {
	h, err := MakeChunkHeader(s, n)
	if err != nil {
		panic(err)
	}
	return binary.BigEndian.AppendUint32(nil, uint32(h))
}

func chunkBytes(s Stream, data []byte) []byte { return append(hdr(s, len(data)), data...) }

func TestChunkHeader(t *testing.T) {
	for _, tc := range []struct {
		s    Stream
		n    int
		want uint32
		str  string
	}{
		{Outer, 0, 0x00000000, "outer EOF"},
		{Inner, 0, 0x80000000, "inner EOF"},
		{Outer, 37, 0x00000025, "outer L=37"},
		{Inner, 203, 0x800000cb, "inner L=203"},
		{Inner, MaxChunkLen, 0xffffffff, "inner L=2147483647"},
	} {
		h, err := MakeChunkHeader(tc.s, tc.n)
		must(t, err)
		if uint32(h) != tc.want || h.String() != tc.str || h.Stream() != tc.s || h.Len() != tc.n || h.IsEOF() != (tc.n == 0) {
			t.Errorf("%v %d: %08x %q", tc.s, tc.n, uint32(h), h)
		}
	}
	if _, err := MakeChunkHeader(Outer, MaxChunkLen+1); !errors.Is(err, ErrLimit) {
		t.Errorf("oversized chunk: %v", err)
	}
	if _, err := MakeChunkHeader(Stream(2), 1); err == nil {
		t.Error("invalid stream accepted")
	}
}

func TestChunkWriterRules(t *testing.T) {
	var b bytes.Buffer
	w := NewChunkWriter(&b)
	if err := w.WriteChunk(Outer, nil); !errors.Is(err, ErrEmptyChunk) {
		t.Fatalf("empty chunk: %v", err)
	}
	must(t, w.WriteChunk(Inner, []byte("abc")))
	must(t, w.WriteEOF(Inner))
	if err := w.WriteChunk(Inner, []byte("x")); !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("chunk after EOF: %v", err)
	}
	if err := w.WriteEOF(Inner); !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("second EOF: %v", err)
	}
	must(t, w.WriteChunk(Outer, []byte("o")))
	if !w.Ended(Inner) || w.Ended(Outer) {
		t.Fatal("Ended")
	}
	want := bytes.Join([][]byte{chunkBytes(Inner, []byte("abc")), hdr(Inner, 0), chunkBytes(Outer, []byte("o"))}, nil)
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("got %x want %x", b.Bytes(), want)
	}

	// writeChunked splits exactly and writes nothing for n = 0.
	b.Reset()
	w = NewChunkWriter(&b)
	must(t, w.writeChunked(Outer, bytes.NewReader(make([]byte, 10000)), 10000, 4096))
	must(t, w.writeChunked(Outer, nil, 0, 4096))
	p := parseLeg(t, b.Bytes())
	if chunkList(p.chunks) != "[outer L=4096] [outer L=4096] [outer L=1808] " {
		t.Fatalf("WriteChunked layout %s", chunkList(p.chunks))
	}
	if err := w.writeChunked(Outer, bytes.NewReader(make([]byte, 5)), 6, 4096); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short source: %v", err)
	}

	// A large chunk goes out as header + data, still one chunk.
	b.Reset()
	w = NewChunkWriter(&b)
	big := bytes.Repeat([]byte{7}, coalesceLimit+10)
	must(t, w.WriteChunk(Outer, big))
	if !bytes.Equal(b.Bytes(), chunkBytes(Outer, big)) {
		t.Fatal("large chunk")
	}

	// A write error is sticky.
	w = NewChunkWriter(failWriter{})
	if w.WriteChunk(Outer, []byte("a")) == nil || w.WriteEOF(Inner) == nil {
		t.Fatal("write errors not reported")
	}
}

func TestStreamWriter(t *testing.T) {
	var b bytes.Buffer
	m := NewMux(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(nil), &b}, &MuxConfig{MaxWriteChunk: 3})
	w := m.Writer(Outer)
	if n, err := w.Write(nil); n != 0 || err != nil || b.Len() != 0 {
		t.Fatal("empty write produced output")
	}
	n, err := w.Write([]byte("abcdefg"))
	if n != 7 || err != nil {
		t.Fatal(n, err)
	}
	must(t, w.Close())
	must(t, w.Close()) // idempotent
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("write after close: %v", err)
	}
	want := bytes.Join([][]byte{chunkBytes(Outer, []byte("abc")), chunkBytes(Outer, []byte("def")), chunkBytes(Outer, []byte("g")), hdr(Outer, 0)}, nil)
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("got %x", b.Bytes())
	}
}

func TestChunkReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"inner after inner EOF", bytes.Join([][]byte{hdr(Inner, 0), chunkBytes(Inner, []byte("x"))}, nil), ErrMalformed},
		{"outer EOF twice", bytes.Join([][]byte{hdr(Outer, 0), hdr(Outer, 0)}, nil), ErrMalformed},
		{"header cut", []byte{0x80, 0}, io.ErrUnexpectedEOF},
		{"data cut", append(hdr(Inner, 10), 1, 2, 3), io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := NewChunkReader(bytes.NewReader(tc.in))
			var err error
			for err == nil {
				_, err = cr.ReadChunk(MinChunkAccept)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, err2 := cr.Next(); err2 == nil {
				t.Fatal("error not sticky")
			}
			// The Mux reports the same.
			m := NewMux(readOnly(bytes.NewReader(tc.in)), nil)
			_, err = io.ReadAll(m.Reader(Outer))
			if err == nil {
				_, err = io.ReadAll(m.Reader(Inner))
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Mux: got %v, want %v", err, tc.want)
			}
		})
	}
	// A clean end between chunks is io.EOF, and ReadChunk refuses a chunk
	// above its limit before allocating, leaving the data to stream.
	in := append(hdr(Outer, 5), "hello"...)
	cr := NewChunkReader(bytes.NewReader(in))
	if _, err := cr.ReadChunk(4); !errors.Is(err, ErrLimit) {
		t.Fatalf("limit: %v", err)
	}
	if d, err := io.ReadAll(cr); err != nil || string(d) != "hello" {
		t.Fatalf("streamed %q %v", d, err)
	}
	if _, err := cr.Next(); err != io.EOF {
		t.Fatalf("clean end: %v", err)
	}
	// Next skips unread data.
	cr = NewChunkReader(bytes.NewReader(append(append(hdr(Outer, 3), "abc"...), hdr(Inner, 0)...)))
	cr.Next()
	if h, err := cr.Next(); err != nil || h != innerBit {
		t.Fatalf("skip: %v %v", h, err)
	}
	if !cr.Ended(Inner) || cr.Ended(Outer) {
		t.Fatal("Ended")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

// stutter returns the bytes one at a time with a timeout error between
// each, like a connection with a short read deadline.
type stutter struct {
	b    []byte
	tick bool
}

func (s *stutter) Read(p []byte) (int, error) {
	s.tick = !s.tick
	if s.tick {
		return 0, timeoutErr{}
	}
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	p[0] = s.b[0]
	s.b = s.b[1:]
	return 1, nil
}

// TestTimeoutsAreNotSticky: a read timeout inside a chunk header or data
// is returned and the next read resumes where it stopped.
func TestTimeoutsAreNotSticky(t *testing.T) {
	in := bytes.Join([][]byte{chunkBytes(Inner, []byte("hi")), chunkBytes(Outer, []byte("abc")), hdr(Outer, 0)}, nil)
	m := NewMux(readOnly(&stutter{b: in}), nil)
	var got []byte
	timeouts := 0
	buf := make([]byte, 8)
	for {
		n, err := m.Reader(Outer).Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			if !isTimeout(err) {
				t.Fatal(err)
			}
			timeouts++
		}
	}
	if string(got) != "abc" || timeouts == 0 {
		t.Fatalf("got %q after %d timeouts", got, timeouts)
	}
	for {
		b, err := m.Reader(Inner).ReadChunk()
		if isTimeout(err) {
			continue
		}
		if err != nil || string(b) != "hi" {
			t.Fatalf("inner %q %v", b, err)
		}
		break
	}
}

// infinite yields a chunk header and then zeros for ever.
type infinite struct{ head []byte }

func (r *infinite) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	clear(p)
	return len(p), nil
}

// TestMuxBufferLimit: a huge chunk of the stream nobody reads is buffered
// only up to MaxBuffered, then the Mux fails; it never allocates what the
// header claims.
func TestMuxBufferLimit(t *testing.T) {
	m := NewMux(readOnly(&infinite{head: hdr(Inner, MaxChunkLen)}), &MuxConfig{MaxBuffered: MinChunkAccept})
	_, err := m.Reader(Outer).Read(make([]byte, 10))
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != MinChunkAccept {
		t.Fatalf("got %v", err)
	}
	if got := m.Reader(Inner).Buffered(); got > MinChunkAccept {
		t.Fatalf("buffered %d > limit", got)
	}
	// The inner reader still gets what was buffered, then the error.
	n, _ := io.Copy(io.Discard, m.Reader(Inner))
	if n == 0 || n > MinChunkAccept {
		t.Fatalf("inner delivered %d bytes", n)
	}
}

// TestMuxLargeChunks: a chunk of the stream being read is streamed,
// whatever its size; a 1 MiB chunk of the other stream is buffered (§2.3);
// ReadChunk returns long chunks in 1 MiB pieces.
func TestMuxLargeChunks(t *testing.T) {
	big := make([]byte, 3*MiB+5)
	for i := range big {
		big[i] = byte(i * 7)
	}
	oneMiB := bytes.Repeat([]byte{0xab}, MinChunkAccept)
	in := bytes.Join([][]byte{chunkBytes(Inner, oneMiB), chunkBytes(Outer, big), hdr(Outer, 0), chunkBytes(Inner, big), hdr(Inner, 0)}, nil)
	m := NewMux(readOnly(bytes.NewReader(in)), &MuxConfig{MaxBuffered: 1})
	got, err := io.ReadAll(m.Reader(Outer))
	must(t, err)
	if !bytes.Equal(got, big) {
		t.Fatal("outer data differs")
	}
	if m.Reader(Inner).Buffered() != MinChunkAccept {
		t.Fatalf("inner buffered %d", m.Reader(Inner).Buffered())
	}
	var sizes []int
	var inner []byte
	for {
		b, err := m.Reader(Inner).ReadChunk()
		if err == io.EOF {
			break
		}
		must(t, err)
		sizes = append(sizes, len(b))
		inner = append(inner, b...)
	}
	if !bytes.Equal(inner, append(oneMiB, big...)) {
		t.Fatal("inner data differs")
	}
	want := []int{MiB, MiB, MiB, MiB, 5}
	if len(sizes) != len(want) {
		t.Fatalf("chunk pieces %v", sizes)
	}
	for i := range want {
		if sizes[i] != want[i] {
			t.Fatalf("chunk pieces %v", sizes)
		}
	}
}

// TestMuxInterleaved: byte-level reads join chunks, ReadChunk keeps
// boundaries, EndedByMarker tells a marker from the connection's end.
func TestMuxInterleaved(t *testing.T) {
	in := bytes.Join([][]byte{
		chunkBytes(Inner, []byte("ClientHello")),
		chunkBytes(Outer, []byte("he")),
		chunkBytes(Inner, []byte("rest")),
		chunkBytes(Outer, []byte("llo")),
		hdr(Inner, 0),
	}, nil)
	m := NewMux(readOnly(iotest.HalfReader(bytes.NewReader(in))), nil)
	got, err := io.ReadAll(m.Reader(Outer))
	must(t, err)
	if string(got) != "hello" || m.Reader(Outer).EndedByMarker() {
		t.Fatalf("outer %q marker %v", got, m.Reader(Outer).EndedByMarker())
	}
	if !m.Reader(Inner).EndedByMarker() {
		t.Fatal("inner marker not seen")
	}
	b1, _ := m.Reader(Inner).ReadChunk()
	b2, _ := m.Reader(Inner).ReadChunk()
	if _, err := m.Reader(Inner).ReadChunk(); err != io.EOF || string(b1) != "ClientHello" || string(b2) != "rest" {
		t.Fatalf("inner chunks %q %q %v", b1, b2, err)
	}
}

// TestMuxDiscardAndDrain: a discarded stream's data is dropped, reads of
// it fail, and Drain stops at the markers asked for.
func TestMuxDiscardAndDrain(t *testing.T) {
	in := bytes.Join([][]byte{
		chunkBytes(Inner, []byte("x")),
		chunkBytes(Outer, []byte("reply")),
		chunkBytes(Inner, []byte("close_notify")),
		hdr(Inner, 0),
		hdr(Outer, 0),
		chunkBytes(Outer, []byte("never read")),
	}, nil)
	// The trailing outer chunk after its EOF is a framing error, but Drain
	// (until the outer marker) stops before reaching it.
	m := NewMux(readOnly(bytes.NewReader(in)), nil)
	m.Reader(Inner).Discard()
	if _, err := m.Reader(Inner).Read(make([]byte, 1)); !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("read of discarded stream: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(m.Reader(Outer), buf); err != nil || string(buf) != "reply" {
		t.Fatalf("%q %v", buf, err)
	}
	if m.Reader(Inner).Buffered() != 0 {
		t.Fatal("discarded data was buffered")
	}
	must(t, m.Drain(Outer))

	// Drain with no argument reads to the connection's end.
	m = NewMux(readOnly(bytes.NewReader(in[:len(in)-len("never read")-4])), nil)
	must(t, m.Drain())
	// ... and reports a connection cut inside a chunk.
	cut := bytes.Join([][]byte{chunkBytes(Outer, []byte("reply")), chunkBytes(Inner, []byte("close_notify"))}, nil)
	m = NewMux(readOnly(bytes.NewReader(cut[:len(cut)-3])), nil)
	if err := m.Drain(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Drain of a cut stream: %v", err)
	}
}

// TestMuxConcurrentReaders: two goroutines reading the two streams while
// the peer interleaves them never lose or reorder data.
func TestMuxConcurrentReaders(t *testing.T) {
	pr, pw := io.Pipe()
	m := NewMux(readOnly(pr), &MuxConfig{MaxBuffered: MinChunkAccept})
	var want [2][]byte
	go func() {
		w := NewChunkWriter(pw)
		for i := range 2000 {
			s := Stream(i % 3 % 2)
			d := bytes.Repeat([]byte{byte(i)}, 1+i%700)
			want[s] = append(want[s], d...)
			w.WriteChunk(s, d)
		}
		w.WriteEOF(Outer)
		w.WriteEOF(Inner)
		pw.Close()
	}()
	var got [2][]byte
	var errs [2]error
	var wg sync.WaitGroup
	for s := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1+s*300)
			for {
				n, err := m.Reader(Stream(s)).Read(buf)
				got[s] = append(got[s], buf[:n]...)
				if err != nil {
					if err != io.EOF {
						errs[s] = err
					}
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("readers stuck")
	}
	for s := range 2 {
		if errs[s] != nil || !bytes.Equal(got[s], want[s]) {
			t.Fatalf("%v: %v, %d bytes of %d", Stream(s), errs[s], len(got[s]), len(want[s]))
		}
	}
}

func TestInnerConnClose(t *testing.T) {
	var out bytes.Buffer
	in := bytes.Join([][]byte{chunkBytes(Inner, []byte("peer")), chunkBytes(Inner, []byte("more")), hdr(Inner, 0), chunkBytes(Outer, []byte("R")), hdr(Outer, 0)}, nil)
	m := NewMux(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(in), &out}, nil)
	c := m.InnerConn()
	if m.InnerConn() != c {
		t.Fatal("InnerConn not stable")
	}
	buf := make([]byte, 4)
	if n, err := c.Read(buf); n != 4 || err != nil || string(buf) != "peer" {
		t.Fatal(n, err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	must(t, c.SetDeadline(time.Now()))
	must(t, c.Close())
	must(t, c.Close())
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := c.Write(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	// The outer stream still works and the peer's leftover inner data is
	// dropped.
	got, err := io.ReadAll(m.Reader(Outer))
	if err != nil || string(got) != "R" || m.Reader(Inner).Buffered() != 0 {
		t.Fatalf("%q %v", got, err)
	}
	want := bytes.Join([][]byte{chunkBytes(Inner, []byte("hello")), hdr(Inner, 0)}, nil)
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("wrote %x", out.Bytes())
	}

	// closeWrite then Close sends one EOF.
	out.Reset()
	m = NewMux(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(nil), &out}, nil)
	c = m.InnerConn()
	must(t, c.closeWrite())
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("read at connection end: %v", err)
	}
	must(t, c.Close())
	if !bytes.Equal(out.Bytes(), hdr(Inner, 0)) {
		t.Fatalf("wrote %x", out.Bytes())
	}
	if c.LocalAddr().Network() != "sigul-inner" || c.RemoteAddr().String() == "" {
		t.Fatal("addresses")
	}
}
