// This file holds sign-data and sign-text, the OpenPGP signatures over
// arbitrary data.

package server

import (
	"bytes"
	"context"
	"errors"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/protocol"
)

func (h *Handlers) openpgpKey(ka KeyAccess) (*openpgp.Key, error) {
	if len(ka.Key.PGPCertificate) == 0 {
		return nil, refuse(protocol.CodeUnsupportedKeytype)
	}
	hk, err := h.signer(ka)
	if err != nil {
		return nil, err
	}
	return openpgp.NewKey(hk, ka.Key.PGPCreated)
}

func (h *Handlers) signData(ctx context.Context, r *Request) (*Response, error) {
	armor, err := optBool(r, "armor", false)
	if err != nil {
		return nil, err
	}
	ka, err := h.keyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	pk, err := h.openpgpKey(ka)
	if err != nil {
		return nil, err
	}
	sig, err := pk.SignDetached(r.Payload, false, h.now())
	if err != nil {
		return nil, err
	}
	if armor {
		if sig, err = openpgp.Armor(sig, "PGP SIGNATURE"); err != nil {
			return nil, err
		}
	}
	return withPayload(sig), nil
}

func (h *Handlers) signText(ctx context.Context, r *Request) (*Response, error) {
	ka, err := h.keyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	pk, err := h.openpgpKey(ka)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := pk.ClearSign(&out, r.Payload, h.now()); err != nil {
		if errors.Is(err, openpgp.ErrNotCleartext) {
			return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
		}
		return nil, err
	}
	return withPayload(out.Bytes()), nil
}
