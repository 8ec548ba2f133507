package server

import (
	"context"

	"github.com/signet-project/signet/hsm"
)

// DecoyCost exposes, to the tests, the KDF cost of the decoy that a
// refusal of (user, key) without an access row unwraps.
func (a *Authenticator) DecoyCost(ctx context.Context, user, key string) (hsm.KDFParams, error) {
	return a.decoys.cost(ctx, user, key)
}
