package main

import (
	"context"

	"github.com/signet-project/signet/client"
)

// kojiLookup returns the look-ups in Koji instance name (-k; "" for the
// default Koji configuration). When the instance is not configured, or
// its configuration does not read, every package named by N-V-R.A gets
// that error as its result, as with Sigul's client.
func (a *app) kojiLookup(name string) client.KojiLookup {
	inst, err := a.cfg.Koji.Resolve(name)
	if err != nil {
		return failedLookup{err}
	}
	l, err := client.NewKojiLookup(inst)
	if err != nil {
		return failedLookup{err}
	}
	return l
}

// failedLookup answers every look-up with the error that kept the Koji
// instance from being used.
type failedLookup struct{ err error }

func (f failedLookup) GetRPM(context.Context, string) (*client.KojiRPM, error) { return nil, f.err }
