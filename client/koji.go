package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signet-project/signet/protocol"
)

// KojiRPM is what Koji's getRPM says about one package: the fields the
// client sends for it (§7.2, §7.10).
type KojiRPM struct {
	Name, Version, Release, Arch string
	// Epoch is nil when the package has none.
	Epoch *int
	// PayloadHash is Koji's payloadhash: the package's SIGMD5 in hex.
	PayloadHash string
	// Size is the package's size in bytes, as Koji records it.
	Size int64
}

// KojiLookup looks packages up in one Koji instance, without logging in.
type KojiLookup interface {
	// GetRPM returns the package Koji knows as nvra (N-V-R.A), or nil
	// and no error when Koji knows no such package.
	GetRPM(ctx context.Context, nvra string) (*KojiRPM, error)
}

// KojiError is the result of a package Koji could not give: the look-up
// failed or Koji does not know it. It is reported for that package only;
// the rest of a batch goes on.
type KojiError struct {
	NEVRA    string
	Instance string // "" for the default Koji configuration
	Err      error
}

// ErrNotInKoji is wrapped by a KojiError for a package Koji does not know.
var ErrNotInKoji = errors.New("does not exist in Koji")

func (e *KojiError) Error() string {
	where := "Koji"
	if e.Instance != "" {
		where = "Koji instance " + e.Instance
	}
	if errors.Is(e.Err, ErrNotInKoji) {
		return fmt.Sprintf("Koji error (KOJI_ERROR): %s does not exist in %s (getRPM)", e.NEVRA, where)
	}
	return fmt.Sprintf("Koji error (KOJI_ERROR): getRPM(%s) on %s: %v", e.NEVRA, where, e.Err)
}

func (e *KojiError) Unwrap() error { return e.Err }

// LooksLikeNVRA reports whether s has the form N-V-R.A that Koji's getRPM
// takes: a name, a version and a release separated by hyphens, and an
// architecture after the release's last dot, none of them empty, and no
// slash.
func LooksLikeNVRA(s string) bool {
	if strings.ContainsAny(s, "/ \t\n") {
		return false
	}
	dot := strings.LastIndexByte(s, '.')
	if dot < 0 || dot == len(s)-1 {
		return false
	}
	nvr := s[:dot]
	r := strings.LastIndexByte(nvr, '-')
	if r <= 0 || r == len(nvr)-1 {
		return false
	}
	v := strings.LastIndexByte(nvr[:r], '-')
	return v > 0 && v < r-1
}

// kojiFields are the outer (sign-rpm) or sub-request (sign-rpms) fields
// for a package from Koji, as Sigul's client sets them: the name, epoch
// ("" for none), version, release and arch Koji gave, and rpm-sigmd5,
// Koji's payloadhash decoded from hex (§7.2).
func kojiFields(f *protocol.Fields, r *KojiRPM) error {
	sum, err := hex.DecodeString(r.PayloadHash)
	if err != nil || len(sum) != 16 {
		//lint:ignore ST1005 Koji is a proper noun
		return fmt.Errorf("Koji gave payloadhash %q, which is not an MD5 in hex", r.PayloadHash)
	}
	epoch := ""
	if r.Epoch != nil {
		epoch = strconv.Itoa(*r.Epoch)
	}
	for _, kv := range []struct{ k, v string }{{"rpm-name", r.Name}, {"rpm-epoch", epoch}, {"rpm-version", r.Version}, {"rpm-release", r.Release}, {"rpm-arch", r.Arch}} {
		if err := f.SetStr(kv.k, kv.v); err != nil {
			//lint:ignore ST1005 Koji is a proper noun
			return fmt.Errorf("Koji's %s %q: %w", strings.TrimPrefix(kv.k, "rpm-"), kv.v, err)
		}
	}
	return f.Set("rpm-sigmd5", sum)
}

// lookup asks Koji for one package, as a KojiError on failure.
func (o *SignRPMOptions) lookup(ctx context.Context, nevra string) (*KojiRPM, error) {
	if o.Koji == nil {
		return nil, &KojiError{NEVRA: nevra, Instance: o.KojiInstance, Err: errors.New("no Koji instance to look it up in")}
	}
	r, err := o.Koji.GetRPM(ctx, nevra)
	if err == nil && r == nil {
		err = ErrNotInKoji
	}
	if err != nil {
		return nil, &KojiError{NEVRA: nevra, Instance: o.KojiInstance, Err: err}
	}
	return r, nil
}

// kojiLookups is how many getRPM calls a batch has in flight at once.
const kojiLookups = 8

// lookupAll looks up every package of the batch named by N-V-R.A, a few
// at a time; a failure is that package's result. It returns how many it
// looked up, how many failed and how long it took.
func (b *rpmBatch) lookupAll(ctx context.Context) (n, failed int, took time.Duration) {
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, kojiLookups)
	for i, f := range b.files {
		if f.NEVRA == "" {
			continue
		}
		n++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := b.opts.lookup(ctx, f.NEVRA)
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				b.finish(i, err)
				return
			}
			b.mu.Lock()
			b.koji[i] = r
			b.mu.Unlock()
		}()
	}
	wg.Wait()
	return n, failed, time.Since(start)
}
