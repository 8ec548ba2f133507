package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server/store"
)

// Batch serves the items of a sign-rpms sub-phase (PROTOCOL-v1 §7). The
// connection reads sub-requests, calls Sign for several of them at once,
// records the results in order with Record, and only then sends their
// sub-replies, in order.
type Batch interface {
	// Sign handles one item. It is called concurrently for different
	// items and must not block on other items.
	Sign(ctx context.Context, it *BatchItem) *BatchResult
	// Record writes the audit records of results, in order, before their
	// sub-replies leave the server; an error ends the connection and no
	// signature in results is sent.
	Record(ctx context.Context, results []*BatchResult) error
	// Close releases what the batch holds (keys, PINs).
	Close()
}

// BatchItem is one sub-request.
type BatchItem struct {
	Seq    uint32
	ID     []byte
	Fields map[string][]byte
	// Payload holds the sub-request's payload, Size bytes;
	// Authenticated says its MAC verified (§7.6 step 3).
	Payload       io.ReaderAt
	Size          int64
	Authenticated bool
}

// BatchResult is the answer to one item.
type BatchResult struct {
	Status  protocol.ErrorCode
	Message string
	// Payload (closed after sending if it is an io.Closer) and its size.
	Payload io.Reader
	Size    int64
	// Audit is the item's audit record (actor, operation and key filled
	// in by the batch).
	Audit store.AuditRecord

	id []byte
}

// defaultBatchWorkers is how many items of one sign-rpms connection are
// signed at once when ConnServer.BatchWorkers is zero.
func defaultBatchWorkers() int { return max(2, runtime.GOMAXPROCS(0)) }

// subPhase runs the sign-rpms sub-phase after the OK reply: sub-requests
// are read and spooled in order, signed by up to BatchWorkers goroutines,
// audited, and answered in order (§7.1, §7.6, §7.12). It returns once the
// bridge's outer EOF has been read and every item answered; a protocol
// error (a bad header MAC, a missing id, a size limit) ends it with an
// error, after which the caller drops the connection without a word, as
// §7.12 says.
func (s *ConnServer) subPhase(ctx context.Context, m *protocol.Mux, keys protocol.SubKeys, b Batch) (err error) {
	ctx, cancel := context.WithCancel(ctx)

	workers := s.BatchWorkers
	if workers <= 0 {
		workers = defaultBatchWorkers()
	}
	maxFile := s.MaxFilePayload
	if maxFile == 0 {
		maxFile = protocol.DefaultMaxFilePayload
	}
	maxTotal := s.MaxRPMsPayloads
	if maxTotal == 0 {
		maxTotal = defaultMaxRPMsPayloads
	}

	type pending struct {
		id   []byte
		done chan *BatchResult
	}
	// queue holds the items in arrival order; its bound (and the worker
	// semaphore) is the back-pressure on the client (§7.12).
	queue := make(chan *pending, 4*workers)
	sem := make(chan struct{}, workers)
	var readErr error
	var wg sync.WaitGroup
	go func() {
		defer close(queue)
		rr := protocol.NewSubRequestReader(m.Reader(protocol.Outer), keys, maxFile)
		var total uint64
		for {
			q, err := rr.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				readErr = err
				return
			}
			total += (q.Payload.Len() + 4095) &^ 4095
			if total > maxTotal {
				readErr = &protocol.LimitError{What: "sign-rpms payloads in all", Value: total, Limit: maxTotal}
				return
			}
			// The limit keeps the spool from reading the MAC: Finish
			// checks it below.
			sp, err := s.spool(io.LimitReader(q.Payload, int64(q.Payload.Len())), q.Payload.Len())
			if err != nil {
				readErr = fmt.Errorf("sub-request %d: %w", q.Seq, err)
				return
			}
			authenticated := true
			if err := q.Payload.Finish(); err != nil {
				var ie *protocol.IntegrityError
				if !errors.As(err, &ie) {
					sp.Close()
					readErr = fmt.Errorf("sub-request %d: %w", q.Seq, err)
					return
				}
				authenticated = false // §7.6 step 3: not an error by itself
			}
			it := &BatchItem{Seq: q.Seq, ID: q.Header.ID(), Fields: map[string][]byte{}, Payload: sp,
				Size: int64(q.Payload.Len()), Authenticated: authenticated}
			for _, f := range q.Header.Fields() {
				it.Fields[f.Key] = f.Value
			}
			p := &pending{id: it.ID, done: make(chan *BatchResult, 1)}
			select {
			case queue <- p:
			case <-ctx.Done():
				sp.Close()
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				sp.Close()
				p.done <- &BatchResult{Status: protocol.CodeUnknownError, id: it.ID}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				defer sp.Close()
				res := b.Sign(ctx, it)
				res.id = it.ID
				p.done <- res
			}()
		}
	}()
	// Whatever happens, the workers finish before the batch is closed.
	// After an error the reader may still be blocked on the connection,
	// which the caller closes: the cleanup then runs in the background.
	finish := func() {
		cancel()
		for p := range queue {
			closePayload((<-p.done).Payload)
		}
		wg.Wait()
		b.Close()
	}
	defer func() {
		if err != nil {
			go finish()
		} else {
			finish()
		}
	}()

	// The index of a sub-reply counts only the OK sub-replies before it, as
	// the unmodified 1.2 client expects (§7.9 item 6); signet's client
	// accepts this and the 1.2 server's rule.
	w := protocol.NewSubReplyWriterIndexed(m.Writer(protocol.Outer), keys, protocol.IndexOKReplies)
	var carry *pending
	for {
		p := carry
		carry = nil
		if p == nil {
			var ok bool
			if p, ok = <-queue; !ok {
				break
			}
		}
		// Record every result that is ready in one audit transaction.
		results := []*BatchResult{<-p.done}
	gather:
		for {
			select {
			case next, ok := <-queue:
				if !ok {
					break gather
				}
				select {
				case r := <-next.done:
					results = append(results, r)
				default:
					carry = next
					break gather
				}
			default:
				break gather
			}
		}
		if err := b.Record(ctx, results); err != nil {
			for _, r := range results {
				closePayload(r.Payload)
			}
			return fmt.Errorf("audit: %w", err)
		}
		for i, r := range results {
			err := writeSubReply(w, r)
			closePayload(r.Payload)
			if err != nil {
				for _, r := range results[i+1:] {
					closePayload(r.Payload)
				}
				return err
			}
		}
	}
	if readErr != nil {
		return readErr
	}
	return nil
}

func writeSubReply(w *protocol.SubReplyWriter, r *BatchResult) error {
	fields, err := protocol.SubReplyFields(r.id, r.Status)
	if err != nil {
		return err
	}
	if r.Message != "" {
		if err := fields.Set("message", []byte(safeMessage(r.Message))); err != nil {
			return err
		}
	}
	payload, size := r.Payload, r.Size
	if r.Status != protocol.CodeOK || payload == nil {
		payload, size = eofReader{}, 0
	}
	_, err = w.Write(fields, uint64(size), payload)
	return err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// spoolOutput writes a signed output (a package, an image, a plaintext)
// with fn to an unlinked temporary file in dir and returns the file,
// positioned at its start, and its size. Nothing is left on disk, whatever
// happens; on error the file is closed.
func spoolOutput(dir string, fn func(w io.Writer) error) (*os.File, int64, error) {
	f, err := os.CreateTemp(dir, "signet-out-*")
	if err != nil {
		return nil, 0, err
	}
	os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 256<<10)
	err = fn(bw)
	if err == nil {
		err = bw.Flush()
	}
	var n int64
	if err == nil {
		n, err = f.Seek(0, io.SeekCurrent)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, n, nil
}
