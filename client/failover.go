package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/signet-project/signet/protocol"
)

// RetryPolicy bounds how a Client moves between bridges.
//
// A request is sent again, to the next bridge, only when it cannot have
// been acted on: the TCP connection was refused or failed, the TLS
// handshake with the bridge failed, or the connection died before the
// inner message (which carries the payload's hash, the secrets and the
// reply keys, and without which the server does nothing) was written.
// Once the inner message may have reached a server the request is not
// repeated, whatever the operation: an administrative request (new-user,
// grant-key-access, change-passphrase, ...) is not idempotent, and a
// signature made but whose reply was lost would be made twice. The one
// exception is sign-rpms: a batch that loses its connection resumes with
// the packages that have no verified reply yet (see Client.SignRPMs).
type RetryPolicy struct {
	// Rounds is how many times the whole list of bridges is tried
	// (default 3).
	Rounds int
	// Backoff is the wait after the first failed round, doubling after
	// each further round up to MaxBackoff (defaults 250 ms and 5 s). Each
	// wait is jittered: a random duration between half and all of it,
	// so that many clients cut off at once do not come back together.
	Backoff, MaxBackoff time.Duration
	// MaxTime bounds the time spent on failed attempts: no new round
	// starts after it (default 2 minutes).
	MaxTime time.Duration
	// Resumes bounds how many times a sign-rpms batch resumes on a new
	// connection after losing one (default 3).
	Resumes int
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Rounds <= 0 {
		p.Rounds = 3
	}
	if p.Backoff <= 0 {
		p.Backoff = 250 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Second
	}
	if p.MaxTime <= 0 {
		p.MaxTime = 2 * time.Minute
	}
	if p.Resumes <= 0 {
		p.Resumes = 3
	}
	return p
}

// wait returns the jittered wait after failed round n (1, 2, ...).
func (p RetryPolicy) wait(n int) time.Duration {
	d := p.Backoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

type bridge struct {
	addr  BridgeAddr
	outer *tls.Config
}

// Bridges returns the bridges the client tries, in order.
func (c *Client) Bridges() []BridgeAddr {
	var l []BridgeAddr
	for _, b := range c.bridges {
		l = append(l, b.addr)
	}
	return l
}

// failover sends req through the bridges, starting with the one that last
// took a connection, moving to the next when an attempt fails before the
// request may have been acted on (RetryPolicy says when), with a
// jittered, growing wait after each full round.
func (c *Client) failover(ctx context.Context, h *protocol.RequestHeader, req *Request, dst io.Writer) (*Reply, error) {
	p := c.Retry.withDefaults()
	start := time.Now()
	rewind, err := rewinder(req)
	if err != nil {
		return nil, err
	}
	n := len(c.bridges)
	first := int(c.last.Load())
	var errs []error
	for try := 0; ; try++ {
		if try > 0 && try%n == 0 {
			round := try / n
			if round >= p.Rounds || time.Since(start) >= p.MaxTime {
				break
			}
			w := p.wait(round)
			c.log().Warn("no bridge took the request; waiting before the next round", "op", req.Op, "round", round, "wait", w)
			t := time.NewTimer(w)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("%s: %w (%w)", req.Op, ctx.Err(), errors.Join(errs...))
			case <-t.C:
			}
		}
		i := (first + try) % n
		if try > 0 {
			if err := rewind(); err != nil {
				errs = append(errs, err)
				break
			}
		}
		reply, sent, err := c.attempt(ctx, c.bridges[i], h, req, dst)
		if sent {
			c.last.Store(int32(i))
		}
		if err == nil || sent || ctx.Err() != nil {
			return reply, err
		}
		c.log().Warn("bridge failed before the request was sent; trying the next", "op", req.Op,
			"bridge", c.bridges[i].addr.String(), "err", err)
		errs = append(errs, fmt.Errorf("bridge %s: %w", c.bridges[i].addr, err))
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fmt.Errorf("%s: no bridge took the request after %d attempts: %w", req.Op, len(errs), errors.Join(errs...))
}

// rewinder returns a function that puts req.Payload back at its start for
// another attempt, or fails if it cannot (a payload that is not an
// io.Seeker and was partly read).
func rewinder(req *Request) (func() error, error) {
	if req.PayloadSize == 0 || req.Payload == nil {
		return func() error { return nil }, nil
	}
	if s, ok := req.Payload.(io.Seeker); ok {
		at, err := s.Seek(0, io.SeekCurrent)
		if err == nil {
			return func() error {
				_, err := s.Seek(at, io.SeekStart)
				return err
			}, nil
		}
	}
	cr := &countingReader{r: req.Payload}
	req.Payload = cr
	return func() error {
		if cr.n > 0 {
			return fmt.Errorf("%s: the payload cannot be sent again (it was partly read and cannot seek)", req.Op)
		}
		return nil
	}, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// lostConnection reports whether err says the connection broke (rather
// than a reply that was refused, did not verify, or broke the protocol).
func lostConnection(err error) bool {
	if err == nil || errors.Is(err, ErrIntegrity) {
		return false
	}
	if _, ok := CodeOf(err); ok {
		return false
	}
	var ne net.Error
	return errors.Is(err, ErrNoReply) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &ne)
}

// avoid makes the next request start with the bridge after i, when i is
// the bridge that last took a connection (which has just been lost).
func (c *Client) avoid(i int32) {
	if len(c.bridges) > 1 {
		c.last.CompareAndSwap(i, (i+1)%int32(len(c.bridges)))
	}
}
