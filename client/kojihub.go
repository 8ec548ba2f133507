package client

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/signet-project/signet/internal/koji"
)

// NewKojiLookup returns look-ups in the Koji instance inst over Koji's
// XML-RPC (internal/koji), without logging in: the client only reads.
// An https hub's certificate is checked against inst.ServerCA, or the
// system's CAs when it is empty.
func NewKojiLookup(inst KojiInstance) (KojiLookup, error) {
	var conf *tls.Config
	if inst.ServerCA != "" {
		var err error
		if conf, err = koji.TLSConfig(inst.ServerCA, "", ""); err != nil {
			//lint:ignore ST1005 Koji is a proper noun
			return nil, fmt.Errorf("Koji serverca: %w", err)
		}
	}
	c, err := koji.New(inst.Server, koji.Options{TLS: conf})
	if err != nil {
		return nil, err
	}
	return kojiHub{c}, nil
}

type kojiHub struct{ c *koji.Client }

func (h kojiHub) GetRPM(ctx context.Context, nvra string) (*KojiRPM, error) {
	r, err := h.c.GetRPM(ctx, nvra)
	if koji.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &KojiRPM{Name: r.Name, Epoch: r.Epoch, Version: r.Version, Release: r.Release, Arch: r.Arch,
		PayloadHash: r.PayloadHash, Size: r.Size}, nil
}
