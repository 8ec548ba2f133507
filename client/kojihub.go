package client

import "errors"

// NewKojiLookup returns unauthenticated look-ups in the Koji instance inst.
func NewKojiLookup(inst KojiInstance) (KojiLookup, error) {
	return nil, errors.New("TODO: internal/koji")
}
