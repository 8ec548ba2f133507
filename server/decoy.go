package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server/store"
)

// decoyBinding is what decoy PINs are wrapped for: no key or user name can
// be it, so a decoy never unwraps for a real caller.
var decoyBinding = hsm.Binding{Key: "\x00decoy", User: "\x00decoy"}

// decoyRefresh is how long the decoys' view of the stored costs is kept.
const decoyRefresh = 30 * time.Second

// decoys are the wrapped PINs a refusal unwraps when the caller has no
// access row, so that a refusal costs what a real row would.
//
// A real row costs what it was wrapped with, which is the configured KDF
// cost at the time of its grant; after the operator raises the cost, old
// rows stay cheaper. A decoy made at today's cost would then tell a missing
// row from an old one by the time taken. So a decoy costs what the stored
// rows cost: the cost of one stored row, chosen by a keyed hash of (key,
// user). Every (key, user) pair without a row is thereby given a cost drawn
// from the same mix of costs as the rows, and the same one each time it is
// asked, as a real row's would be.
type decoys struct {
	st       *store.Store
	fallback hsm.KDFParams // while there is no row
	secret   [32]byte      // for the choice; only in memory

	mu      sync.Mutex
	read    time.Time
	costs   []hsm.KDFParams // one per stored row, in row order
	wrapped map[hsm.KDFParams][]byte
}

func newDecoys(st *store.Store, fallback hsm.KDFParams) (*decoys, error) {
	d := &decoys{st: st, fallback: fallback, wrapped: map[hsm.KDFParams][]byte{}}
	if _, err := rand.Read(d.secret[:]); err != nil {
		return nil, err
	}
	return d, nil
}

// cost is the KDF cost of the decoy for (key, user).
func (d *decoys) cost(ctx context.Context, user, key string) (hsm.KDFParams, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.costs == nil || time.Since(d.read) > decoyRefresh {
		headers, err := d.st.WrappedPINHeaders(ctx, hsm.WrappedKDFLen)
		if err != nil {
			return hsm.KDFParams{}, err
		}
		costs := make([]hsm.KDFParams, 0, len(headers))
		for _, h := range headers {
			if p, err := hsm.WrappedKDF(h); err == nil {
				costs = append(costs, p)
			}
		}
		d.costs, d.read = costs, time.Now()
	}
	if len(d.costs) == 0 {
		return d.fallback, nil
	}
	m := hmac.New(sha256.New, d.secret[:])
	for _, s := range []string{key, user} {
		m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		m.Write([]byte(s))
	}
	n := binary.BigEndian.Uint64(m.Sum(nil))
	return d.costs[n%uint64(len(d.costs))], nil
}

// pick returns the decoy wrapped PIN for (key, user), one per cost.
func (d *decoys) pick(ctx context.Context, user, key string) ([]byte, error) {
	p, err := d.cost(ctx, user, key)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	w, ok := d.wrapped[p]
	d.mu.Unlock()
	if ok {
		return w, nil
	}
	if w, err = hsm.DecoyWrappedPIN(p); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.wrapped[p] = w
	d.mu.Unlock()
	return w, nil
}
