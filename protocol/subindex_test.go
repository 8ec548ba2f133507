package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// subReplies writes sub-replies with the given statuses (OK ones carry
// the payload "signed-N") under indexing and returns the stream.
func subReplies(t *testing.T, keys SubKeys, indexing SubReplyIndexing, statuses []ErrorCode) []byte {
	t.Helper()
	var b bytes.Buffer
	w := NewSubReplyWriterIndexed(&b, keys, indexing)
	for i, st := range statuses {
		var p []byte
		if st == CodeOK {
			p = []byte("signed-" + string(rune('0'+i)))
		}
		if _, err := w.Write(mustSubReplyFields(t, binary.BigEndian.AppendUint32(nil, uint32(i)), st), uint64(len(p)), bytes.NewReader(p)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// strictReader reads sub-replies as the 1.2 client does (client.py,
// SignRPMsReplyThread._real_run): the index advances only after an OK
// sub-reply. It returns how many sub-replies verified before the first
// that did not.
func strictReader(keys SubKeys, b []byte) (int, error) {
	r := bytes.NewReader(b)
	var n uint32
	for read := 0; ; read++ {
		d := keys.forIndex(n)
		h, err := readSubReplyHeader(r, d.ReplyHeader)
		if err == io.EOF {
			return read, nil
		}
		if err != nil {
			return read, err
		}
		p, err := NewPayloadReader(r, d.ReplyPayload, 1<<20, "payload")
		if err != nil {
			return read, err
		}
		if _, err := io.ReadAll(p); err != nil {
			return read, err
		}
		if h.Status() == CodeOK {
			n++
		}
	}
}

var batchStatuses = []ErrorCode{CodeOK, CodeCorruptRPM, CodeOK, CodeUnauthenticatedRPM, CodeCorruptRPM, CodeOK, CodeOK}

// TestSubReplyIndexOKOnly: under IndexOKReplies a failed sub-reply does
// not use up an index, so a reader that advances only after OK
// sub-replies (the 1.2 client) verifies a whole batch with failures in
// the middle, and one that advances after every sub-reply does not.
func TestSubReplyIndexOKOnly(t *testing.T) {
	keys, err := GenerateSubKeys(nil)
	must(t, err)
	okOnly := subReplies(t, keys, IndexOKReplies, batchStatuses)
	if n, err := strictReader(keys, okOnly); err != nil || n != len(batchStatuses) {
		t.Fatalf("1.2-client rule on an OK-indexed stream: %d verified, %v", n, err)
	}
	every := subReplies(t, keys, IndexEveryReply, batchStatuses)
	if n, err := strictReader(keys, every); !errors.Is(err, ErrIntegrity) || n != 2 {
		t.Fatalf("1.2-client rule on an every-reply stream: %d verified, %v; want the failure §7.9 item 6 describes after 2", n, err)
	}
	// The two streams differ only from the sub-reply after the first
	// failure on.
	if bytes.Equal(okOnly, every) {
		t.Fatal("the indexing rule changed nothing")
	}
}

// TestSubReplyReaderBothConventions: signet's reader verifies every
// sub-reply under either rule, reports the rule it saw, and refuses a
// stream that mixes them or was keyed with other keys.
func TestSubReplyReaderBothConventions(t *testing.T) {
	keys, err := GenerateSubKeys(nil)
	must(t, err)
	for _, indexing := range []SubReplyIndexing{IndexOKReplies, IndexEveryReply} {
		t.Run(indexing.String(), func(t *testing.T) {
			rr := NewSubReplyReader(bytes.NewReader(subReplies(t, keys, indexing, batchStatuses)), keys, 1<<20)
			for i, st := range batchStatuses {
				s, err := rr.Next()
				if err != nil {
					t.Fatalf("sub-reply %d: %v", i, err)
				}
				d, err := io.ReadAll(s.Payload)
				if err != nil {
					t.Fatalf("sub-reply %d payload: %v", i, err)
				}
				id, _ := s.Header.Fields().U32(FieldID)
				if s.Header.Status() != st || id != uint32(i) || s.Seq != uint32(i) {
					t.Fatalf("sub-reply %d: status %v id %d seq %d", i, s.Header.Status(), id, s.Seq)
				}
				if st == CodeOK && string(d) != "signed-"+string(rune('0'+i)) {
					t.Fatalf("sub-reply %d payload %q", i, d)
				}
				if got, decided := rr.Indexing(); decided != (i >= 2) || decided && got != indexing {
					t.Fatalf("after sub-reply %d: indexing %v decided %v", i, got, decided)
				}
			}
			if _, err := rr.Next(); err != io.EOF {
				t.Fatalf("end: %v", err)
			}
		})
	}
	// Without failures the rules agree and nothing is decided.
	rr := NewSubReplyReader(bytes.NewReader(subReplies(t, keys, IndexEveryReply, []ErrorCode{CodeOK, CodeOK})), keys, 1<<20)
	for range 2 {
		s, err := rr.Next()
		must(t, err)
		must(t, s.Payload.Finish())
	}
	if _, decided := rr.Indexing(); decided {
		t.Fatal("indexing decided without a failed sub-reply")
	}

	// A stream that switches rule after the reader decided is refused.
	// Statuses OK, fail, OK, fail, OK: every-reply keys them 0 1 2 3 4,
	// OK-only 0 1 1 2 2. The mixed stream is every-reply's first four
	// (sub-reply 2 decides the rule) then OK-only's last (index 2, not 4).
	st := []ErrorCode{CodeOK, CodeCorruptRPM, CodeOK, CodeCorruptRPM, CodeOK}
	every := subReplies(t, keys, IndexEveryReply, st)
	okOnly := subReplies(t, keys, IndexOKReplies, st)
	cut := func(b []byte, n int) int { // offset of sub-reply n
		r := bytes.NewReader(b)
		rr := NewSubReplyReader(r, keys, 1<<20)
		for range n {
			s, err := rr.Next()
			must(t, err)
			must(t, s.Payload.Finish())
		}
		return len(b) - r.Len()
	}
	mixed := append(bytes.Clone(every[:cut(every, 4)]), okOnly[cut(okOnly, 4):]...)
	rr = NewSubReplyReader(bytes.NewReader(mixed), keys, 1<<20)
	var last error
	for range 5 {
		s, err := rr.Next()
		if err != nil {
			last = err
			break
		}
		must(t, s.Payload.Finish())
	}
	if !errors.Is(last, ErrIntegrity) {
		t.Fatalf("a stream that changed indexing rule was accepted: %v", last)
	}

	// Keys other than the request's never verify, under either rule.
	other, err := GenerateSubKeys(nil)
	must(t, err)
	if _, err := NewSubReplyReader(bytes.NewReader(okOnly), other, 1<<20).Next(); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("other keys: %v", err)
	}
}
