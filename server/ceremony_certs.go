// This file holds the ceremony's public exports: OpenPGP certificates and
// their expiration, X.509 certificates and certificate requests.

package server

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signet-project/signet/formats/openpgp"
	sx509 "github.com/signet-project/signet/formats/x509"
	"github.com/signet-project/signet/server/store"
)

// OpenPGPCertificate returns the key's armored OpenPGP certificate. With
// user ids it makes (and stores) a new one, self-signed by the token key
// with the key's fixed creation time; without, it returns the stored one.
func (a *Admin) OpenPGPCertificate(ctx context.Context, name string, userIDs []string) ([]byte, error) {
	k, err := a.Store.GetKey(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(userIDs) == 0 {
		if len(k.PGPCertificate) == 0 {
			return nil, fmt.Errorf("key %q has no OpenPGP certificate yet: give a user id, e.g. --uid 'Name <email>'", name)
		}
		return openpgp.Armor(k.PGPCertificate, "PGP PUBLIC KEY BLOCK")
	}
	e := a.keyEntry(ctx, "key-export-openpgp", name, strings.Join(userIDs, "; "))
	// The new certificate commits with its record (no record, no effect).
	ctx = a.audited(ctx, &e)
	cert, err := a.recertify(ctx, k, userIDs, nil)
	if err = a.record(ctx, e, err); err != nil {
		return nil, err
	}
	return openpgp.Armor(cert, "PGP PUBLIC KEY BLOCK")
}

// recertify makes and stores a new OpenPGP certificate for k, self-signed
// by the token key with the key's fixed creation time. Nil userIDs keep the
// stored certificate's user ids; a nil expires keeps its expiration time
// (a pointer to the zero time removes it).
func (a *Admin) recertify(ctx context.Context, k store.Key, userIDs []string, expires *time.Time) ([]byte, error) {
	var old openpgp.CertificateInfo
	if len(k.PGPCertificate) > 0 {
		info, err := openpgp.ParseCertificate(k.PGPCertificate)
		if err != nil {
			return nil, fmt.Errorf("stored certificate of key %q: %w", k.Name, err)
		}
		old = *info
	}
	if userIDs == nil {
		userIDs = old.UserIDs
	}
	if expires == nil {
		expires = &old.Expires
	}
	hk, err := tokenKey(a.Token, k)
	if err != nil {
		return nil, err
	}
	pk, err := openpgp.NewKey(hk, k.PGPCreated)
	if err != nil {
		return nil, err
	}
	cert, err := pk.CertificateExpiring(userIDs, a.now(), *expires)
	if err != nil {
		return nil, err
	}
	_, err = a.Store.UpdateKey(ctx, k.Name, store.KeyUpdate{PGPCertificate: &cert})
	return cert, err
}

// setExpiration re-certifies an OpenPGP key with a new expiration time
// (zero: never expires), keeping its user ids (Sigul's
// change-key-expiration). The token must be logged in.
func (a *Admin) setExpiration(ctx context.Context, name string, expires time.Time) error {
	detail := "never expires"
	if !expires.IsZero() {
		detail = "expires " + expires.UTC().Format(time.DateOnly)
	}
	e := a.keyEntry(ctx, "key-expiration", name, detail)
	err := func() error {
		k, err := a.Store.GetKey(ctx, name)
		if err != nil {
			return err
		}
		if len(k.PGPCertificate) == 0 {
			return fmt.Errorf("key %q has no OpenPGP certificate to set an expiration time in", name)
		}
		_, err = a.recertify(ctx, k, nil, &expires)
		return err
	}()
	return a.record(ctx, e, err)
}

// SelfSignedCA makes a self-signed CA certificate for a key and stores it
// under certName.
func (a *Admin) SelfSignedCA(ctx context.Context, keyName, certName string, req sx509.Request) (*x509.Certificate, error) {
	req.Kind = sx509.CA
	e := a.keyEntry(ctx, "key-export-x509-ca", keyName, certDetail(certName, req))
	// The stored certificate commits with its record.
	ctx = a.audited(ctx, &e)
	cert, err := func() (*x509.Certificate, error) {
		hk, _, err := a.Signer(ctx, keyName)
		if err != nil {
			return nil, err
		}
		return a.storeCert(ctx, keyName, certName, func() (*x509.Certificate, error) { return sx509.SelfSignedCA(hk, req) })
	}()
	if err := a.record(ctx, e, err); err != nil {
		return nil, err
	}
	return cert, nil
}

// IssueCertificate makes a certificate for subjectKey, signed by issuerKey
// with its stored certificate issuerCert, and stores it under certName.
func (a *Admin) IssueCertificate(ctx context.Context, issuerKey, issuerCert, subjectKey, certName string, req sx509.Request) (*x509.Certificate, error) {
	e := a.keyEntry(ctx, "key-export-x509", subjectKey, certDetail(certName, req)+" issued by "+issuerKey+"/"+issuerCert)
	// The stored certificate commits with its record.
	ctx = a.audited(ctx, &e)
	cert, err := func() (*x509.Certificate, error) {
		issuer, _, err := a.Signer(ctx, issuerKey)
		if err != nil {
			return nil, err
		}
		ic, err := a.Store.GetCertificate(ctx, issuerKey, issuerCert)
		if err != nil {
			return nil, err
		}
		icert, err := x509.ParseCertificate(ic.DER)
		if err != nil {
			return nil, fmt.Errorf("stored certificate %s/%s: %w", issuerKey, issuerCert, err)
		}
		subject, _, err := a.Signer(ctx, subjectKey)
		if err != nil {
			return nil, err
		}
		return a.storeCert(ctx, subjectKey, certName, func() (*x509.Certificate, error) {
			return sx509.Issue(icert, issuer, subject.Public(), req)
		})
	}()
	if err := a.record(ctx, e, err); err != nil {
		return nil, err
	}
	return cert, nil
}

func (a *Admin) storeCert(ctx context.Context, keyName, certName string, make func() (*x509.Certificate, error)) (*x509.Certificate, error) {
	if certName == "" {
		return nil, errors.New("a certificate needs a name to be stored under (--cert-name)")
	}
	if _, err := a.Store.GetCertificate(ctx, keyName, certName); err == nil {
		return nil, fmt.Errorf("key %q already has a certificate named %q: %w", keyName, certName, store.ErrExists)
	}
	cert, err := make()
	if err != nil {
		return nil, err
	}
	if _, err := a.Store.PutCertificate(ctx, keyName, certName, cert.Raw, false); err != nil {
		return nil, err
	}
	return cert, nil
}

// Certificate returns a stored certificate.
func (a *Admin) Certificate(ctx context.Context, keyName, certName string) (*x509.Certificate, error) {
	c, err := a.Store.GetCertificate(ctx, keyName, certName)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(c.DER)
}

// CertificateRequest makes a PKCS#10 request signed by the key, for a CA
// outside signet to sign. It changes nothing in the database, but it is a
// signature by the key: the request is returned only once its record is
// written.
func (a *Admin) CertificateRequest(ctx context.Context, keyName string, subject pkix.Name, dnsNames []string) ([]byte, error) {
	e := a.keyEntry(ctx, "key-export-csr", keyName, subject.String())
	der, err := func() ([]byte, error) {
		hk, _, err := a.Signer(ctx, keyName)
		if err != nil {
			return nil, err
		}
		return sx509.CertificateRequest(hk, subject, dnsNames)
	}()
	if err := a.record(ctx, e, err); err != nil {
		return nil, err
	}
	return der, nil
}

func certDetail(certName string, req sx509.Request) string {
	return fmt.Sprintf("certificate %q kind %v subject %q", certName, req.Kind, req.Subject.String())
}
