// This file holds `signet-server key export`: public keys, OpenPGP and
// X.509 certificates, certificate requests.

package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	sx509 "github.com/signet-project/signet/formats/x509"
	"github.com/signet-project/signet/server/store"
)

func (a *app) exportCmd() *cobra.Command {
	var (
		format, out, certName, issuer, issuerCert, kind, subject string
		uids, dns                                                []string
		days                                                     int
	)
	c := &cobra.Command{
		Use:   "export KEY --format FORMAT",
		Short: "Export a key's public part: PEM, OpenPGP certificate, X.509 certificate or request",
		Long: `export writes a key's public part (to -o FILE atomically, or to stdout):

  --format pem        the public key, PKIX PEM (no token needed)
  --format openpgp    the OpenPGP certificate, self-signed by the token key with
                      the key's fixed creation time; --uid makes a new one
  --format x509-ca    a new self-signed CA certificate, stored as --cert-name
  --format x509       a new certificate for KEY issued by --issuer with its
                      certificate --issuer-cert; --kind codesigning, ca or
                      sslserver (with --dns); stored as --cert-name
  --format csr        a PKCS#10 certificate request signed by KEY
  --format cert       a stored certificate (--cert-name), PEM`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, name := cmd.Context(), args[0]
			// Check everything that can be checked before touching the token,
			// the database or the output.
			var err error
			req := sx509.Request{Validity: time.Duration(days) * 24 * time.Hour, DNSNames: dns}
			if subject != "" {
				if req.Subject, err = sx509.ParseSubject(subject); err != nil {
					return err
				}
			}
			switch format {
			case "pem", "openpgp", "csr", "cert":
			case "x509-ca":
				req.PathLen = -1
			case "x509":
				if issuer == "" || issuerCert == "" {
					return errors.New("--format x509 needs --issuer KEY and --issuer-cert NAME")
				}
				if req.Kind, err = sx509.ParseKind(kind); err != nil {
					return err
				}
			default:
				return fmt.Errorf("unknown --format %q: pem, openpgp, x509-ca, x509, csr or cert", format)
			}
			o, err := createOutput(out)
			if err != nil {
				return err
			}
			defer o.abort()
			needToken := format == "x509-ca" || format == "x509" || format == "csr" || (format == "openpgp" && len(uids) > 0)
			err = a.with(cmd, needToken, false, func(s *session) error {
				var data []byte
				var cert *x509.Certificate
				var err error
				switch format {
				case "pem":
					var k store.Key
					if k, err = s.admin.Store.GetKey(ctx, name); err == nil {
						data = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.PublicKey})
					}
				case "openpgp":
					data, err = s.admin.OpenPGPCertificate(ctx, name, uids)
				case "x509-ca":
					cert, err = s.admin.SelfSignedCA(ctx, name, certName, req)
				case "x509":
					cert, err = s.admin.IssueCertificate(ctx, issuer, issuerCert, name, certName, req)
				case "csr":
					var der []byte
					if der, err = s.admin.CertificateRequest(ctx, name, req.Subject, dns); err == nil {
						data = sx509.EncodeCSRPEM(der)
					}
				case "cert":
					cert, err = s.admin.Certificate(ctx, name, certName)
				}
				if err != nil {
					return err
				}
				if cert != nil {
					data = sx509.EncodeCertificatePEM(cert)
				}
				return o.commit(data)
			})
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&format, "format", "", "pem, openpgp, x509-ca, x509, csr or cert (required)")
	c.MarkFlagRequired("format")
	f.StringVarP(&out, "output", "o", "", "write to this file (atomically) instead of stdout")
	f.StringArrayVar(&uids, "uid", nil, "OpenPGP user id (repeatable); makes a new certificate")
	f.StringVar(&certName, "cert-name", "", "name the X.509 certificate is stored (or looked up) under")
	f.StringVar(&issuer, "issuer", "", "issuing key, for --format x509")
	f.StringVar(&issuerCert, "issuer-cert", "", "the issuing key's certificate name, for --format x509")
	f.StringVar(&kind, "kind", "codesigning", "certificate kind for --format x509: codesigning, ca or sslserver")
	f.StringVar(&subject, "subject", "", "subject, e.g. '/CN=Fedora Secure Boot CA/O=Fedora Project'")
	f.StringArrayVar(&dns, "dns", nil, "DNS name for an sslserver certificate or a request (repeatable)")
	f.IntVar(&days, "days", 3650, "validity in days")
	return c
}
