package protocol

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"testing/iotest"
)

// request1 and request2 are two requests' worth of chunks, back to back on
// one direction of a connection, each ending with both EOF markers, in
// different orders and interleavings.
var (
	request1 = bytes.Join([][]byte{
		chunkBytes(Outer, []byte("first ")), chunkBytes(Inner, []byte("hello")),
		chunkBytes(Outer, []byte("request")), chunkBytes(Inner, []byte(" inner")),
		hdr(Inner, 0), hdr(Outer, 0),
	}, nil)
	request2 = bytes.Join([][]byte{
		chunkBytes(Inner, []byte("second inner")), chunkBytes(Outer, []byte("second")),
		hdr(Outer, 0), chunkBytes(Inner, []byte(", more")), hdr(Inner, 0),
	}, nil)
)

// readRequest reads want bytes of the outer stream, and the inner stream to
// its EOF marker when inner is set, as a server reading one request does.
func readRequest(t *testing.T, m *Mux, want string, inner string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(m.Reader(Outer), got); err != nil || string(got) != want {
		t.Fatalf("outer = %q, %v; want %q", got, err, want)
	}
	if inner != "" {
		b, err := io.ReadAll(m.Reader(Inner))
		if err != nil || string(b) != inner {
			t.Fatalf("inner = %q, %v; want %q", b, err, inner)
		}
	}
}

func TestAwaitEOFLeavesTheNextRequest(t *testing.T) {
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"halves":   iotest.HalfReader,
	} {
		t.Run(name, func(t *testing.T) {
			trailer := chunkBytes(Outer, []byte("third"))
			src := wrap(bytes.NewReader(bytes.Join([][]byte{request1, request2, trailer}, nil)))
			conn := rw{src, io.Discard}

			// Request 1: the inner stream is read only in part, as a server
			// that closed its inner session leaves the client's
			// close_notify unread.
			m1 := NewMux(conn, nil)
			readRequest(t, m1, "first request", "")
			if b, err := m1.Reader(Inner).ReadChunk(); err != nil || string(b) != "hello" {
				t.Fatalf("inner chunk = %q, %v", b, err)
			}
			if err := m1.AwaitEOF(); err != nil {
				t.Fatalf("AwaitEOF after request 1: %v", err)
			}
			if !m1.Reader(Outer).EndedByMarker() || !m1.Reader(Inner).EndedByMarker() {
				t.Fatal("AwaitEOF returned before both markers")
			}

			// Request 2 on a new Mux over the same connection: every byte
			// after request 1's markers is its own.
			m2 := NewMux(conn, nil)
			readRequest(t, m2, "second", "second inner, more")
			if n, err := m2.Reader(Outer).Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("request 2 outer after its data: %d, %v; want its EOF", n, err)
			}
			if err := m2.AwaitEOF(); err != nil {
				t.Fatalf("AwaitEOF after request 2: %v", err)
			}

			// And the chunk after request 2 is left for a third Mux.
			m3 := NewMux(conn, nil)
			readRequest(t, m3, "third", "")
		})
	}
}

// TestAwaitEOFConcurrentReaders: while one goroutine reads the inner
// stream to its end and another the outer stream, neither reads into the
// next request; AwaitEOF then finds both markers.
func TestAwaitEOFConcurrentReaders(t *testing.T) {
	conn := rw{iotest.HalfReader(bytes.NewReader(append(bytes.Clone(request2), request1...))), io.Discard}
	for i, want := range []struct{ outer, inner string }{{"second", "second inner, more"}, {"first request", "hello inner"}} {
		m := NewMux(conn, nil)
		var wg sync.WaitGroup
		var inner []byte
		var ierr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			inner, ierr = io.ReadAll(m.Reader(Inner))
		}()
		outer, oerr := io.ReadAll(m.Reader(Outer))
		wg.Wait()
		if oerr != nil || ierr != nil || string(outer) != want.outer || string(inner) != want.inner {
			t.Fatalf("request %d: outer %q (%v), inner %q (%v); want %q, %q", i, outer, oerr, inner, ierr, want.outer, want.inner)
		}
		if err := m.AwaitEOF(); err != nil {
			t.Fatalf("request %d: AwaitEOF: %v", i, err)
		}
	}
}

func TestAwaitEOFRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		wire []byte
		read int // outer bytes the "server" reads first
		want error
	}{
		{"outer data left unread", bytes.Join([][]byte{chunkBytes(Outer, []byte("request and more")), hdr(Inner, 0), hdr(Outer, 0)}, nil), 7, ErrMalformed},
		{"outer data after the items", bytes.Join([][]byte{chunkBytes(Outer, []byte("request")), hdr(Inner, 0), chunkBytes(Outer, []byte("x")), hdr(Outer, 0)}, nil), 7, ErrMalformed},
		{"no outer EOF", bytes.Join([][]byte{chunkBytes(Outer, []byte("request")), hdr(Inner, 0)}, nil), 7, io.ErrUnexpectedEOF},
		{"no inner EOF", bytes.Join([][]byte{chunkBytes(Outer, []byte("request")), chunkBytes(Inner, []byte("tls")), hdr(Outer, 0)}, nil), 7, io.ErrUnexpectedEOF},
		{"cut inside a chunk", bytes.Join([][]byte{chunkBytes(Outer, []byte("request")), hdr(Inner, 0), hdr(Outer, 3)[:3]}, nil), 7, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMux(rw{bytes.NewReader(tc.wire), io.Discard}, nil)
			if _, err := io.ReadFull(m.Reader(Outer), make([]byte, tc.read)); err != nil {
				t.Fatal(err)
			}
			if err := m.AwaitEOF(); !errors.Is(err, tc.want) {
				t.Fatalf("AwaitEOF = %v, want %v", err, tc.want)
			}
		})
	}
}

// rw is a connection made of a reader and a writer.
type rw struct {
	io.Reader
	io.Writer
}
