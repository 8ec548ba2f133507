package openpgp

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	gopenpgp "github.com/ProtonMail/go-crypto/openpgp"
)

// CertificateInfo is what a stored certificate says about its key beyond
// the key material: its user ids and when it expires.
type CertificateInfo struct {
	UserIDs []string
	// Expires is the key expiration time of the newest self-signature, or
	// zero if the key does not expire.
	Expires time.Time
}

// ParseCertificate reads a binary transferable public key (as Certificate
// makes) and returns its user ids, sorted, and key expiration time. It
// refuses data that is not exactly one certificate.
func ParseCertificate(data []byte) (*CertificateInfo, error) {
	el, err := gopenpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("openpgp: reading certificate: %w", err)
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("openpgp: %d certificates where one was expected", len(el))
	}
	info := &CertificateInfo{}
	e := el[0]
	var newest time.Time
	for name, id := range e.Identities {
		info.UserIDs = append(info.UserIDs, name)
		sig := id.SelfSignature
		if sig == nil || sig.CreationTime.Before(newest) {
			continue
		}
		newest = sig.CreationTime
		info.Expires = time.Time{}
		if sig.KeyLifetimeSecs != nil && *sig.KeyLifetimeSecs != 0 {
			info.Expires = e.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second).UTC()
		}
	}
	sort.Strings(info.UserIDs)
	return info, nil
}
