package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/client"
)

// peCommands are sign-certificate and sign-pe, Secure Boot's two steps: a
// certificate chain for keys in the token, then Authenticode signatures.
func (a *app) peCommands() []*cobra.Command {
	var req client.SignCertificateRequest
	var certOut string
	var subj subjectFields
	sc := &cobra.Command{Use: "sign-certificate [options] ISSUER-KEY SUBJECT-KEY", Short: "Issue an X.509 certificate for a key",
		Long: `Issue an X.509 certificate for SUBJECT-KEY, signed by ISSUER-KEY with its
certificate --issuer-certificate-name (without it the certificate is a
self-signed CA of ISSUER-KEY itself). The server stores it under
SUBJECT-KEY as --subject-certificate-name, where sign-pe finds it, and
returns it in PEM form. The passphrase is the user's for ISSUER-KEY.

The subject is either --subject (an RFC 4514 name) or built from the
--subject-* options; not both. A validity that would outlast the issuer's
certificate is shortened to end with it, and the server says so.`,
		Args: nargs(2, "issuer key name, and subject key name"),
		RunE: func(_ *cobra.Command, args []string) error {
			r := req
			r.IssuerKey, r.SubjectKey = args[0], args[1]
			built, any := subj.rfc4514()
			switch {
			case r.Subject != "" && any:
				return usagef("Don't provide both --subject and a --subject-* value")
			case r.Subject == "" && !any:
				return usagef("Either --subject, or --subject-* fields should be provided")
			case any:
				r.Subject = built
			}
			if r.IssuerCertificate == "" && r.IssuerKey != r.SubjectKey {
				return usagef("Issuer certificate name is required if not self-signed")
			}
			if r.SubjectCertificate == "" {
				return usagef("Subject certificate name is required")
			}
			if r.Validity == "" {
				return usagef("Validity is required")
			}
			switch r.Type {
			case "ca", "codesigning", "sslserver":
			default:
				return usagef("--certificate-type: invalid choice %q (choose from 'ca', 'codesigning', 'sslserver')", r.Type)
			}
			if err := a.connect(); err != nil {
				return err
			}
			pass, err := a.keyPassphrase()
			if err != nil {
				return err
			}
			r.Passphrase = pass
			var notice string
			err = a.writeOutput(certOut, func(w io.Writer) error {
				var err error
				notice, err = a.client.SignCertificateNotice(a.ctx, r, w)
				return err
			})
			if err == nil && notice != "" {
				fmt.Fprintf(a.stderr, "signet: %s\n", notice)
			}
			return err
		}}
	f := sc.Flags()
	f.StringVarP(&certOut, "output", "o", "", "Write the certificate to this file (signet; default: standard output)")
	f.StringVar(&req.IssuerCertificate, "issuer-certificate-name", "", "Name of issuer certificate (default: self-signed; alias --issuer-certificate)")
	f.StringVar(&req.SubjectCertificate, "subject-certificate-name", "", "Name of certificate to be signed, ASCII letters (required; alias --subject-certificate)")
	f.StringVar(&req.Validity, "validity", "1y", "Validity string, in the form of <int:n>y for n years")
	f.StringVar(&req.Type, "certificate-type", "codesigning", "The type of certificate to be created: ca, codesigning or sslserver")
	f.StringVarP(&req.Subject, "subject", "s", "", `Subject RDN in totality, e.g. "CN=Secure Boot Signer,O=Example"`)
	f.StringVar(&subj.cn, "subject-common-name", "", "Subject CommonName")
	f.StringVar(&subj.ou, "subject-organizational-unit", "", "Subject OrganizationalUnit")
	f.StringVar(&subj.o, "subject-organization", "", "Subject Organization")
	f.StringVar(&subj.l, "subject-locality", "", "Subject Locality")
	f.StringVar(&subj.st, "subject-state", "", "Subject State")
	f.StringVar(&subj.c, "subject-country-name", "", "Subject CountryName (two letters)")
	aliasFlags(sc, map[string]string{"issuer-certificate": "issuer-certificate-name", "subject-certificate": "subject-certificate-name"})

	var peOut string
	var replace bool
	sp := &cobra.Command{Use: "sign-pe [options] KEY CERT-NAME FILE", Short: "Sign a PE/EFI image with Authenticode",
		Long: `Sign a PE/EFI image (shim, GRUB, a kernel Image) with Authenticode, using
KEY and its stored certificate CERT-NAME. A signature the image already
carries is kept, and the new one added after it, unless --replace. The
signed image is written (to --output, or standard output when that is
not a terminal) only once the reply verified.`,
		Args: nargs(3, "key name, certificate name and file name"),
		RunE: func(_ *cobra.Command, args []string) error {
			if peOut == "" && a.stdoutIsTTY() {
				return usagef("won't write output to a TTY, specify a file name")
			}
			if err := a.connect(); err != nil {
				return err
			}
			return a.sign([]string{args[0], args[2]}, peOut, func(pass []byte, in io.Reader, size int64, w io.Writer) error {
				return a.client.SignPE(a.ctx, client.SignPERequest{Key: args[0], CertName: args[1], Replace: replace, Passphrase: pass, In: in, Size: size}, w)
			})
		}}
	sp.Flags().StringVarP(&peOut, "output", "o", "", "Write output to this file")
	sp.Flags().BoolVar(&replace, "replace", false, "Replace the image's signatures instead of adding one (signet extension)")
	return []*cobra.Command{sc, sp}
}

// subjectFields are sign-certificate's --subject-* options.
type subjectFields struct{ cn, ou, o, l, st, c string }

// rfc4514 returns the subject the options name, most specific attribute
// first as RFC 4514 writes it, and whether any option was given. (Sigul
// 1.2's client accepts all six options but puts only CN and OU into the
// subject; signet keeps every one the user gave.)
func (s subjectFields) rfc4514() (string, bool) {
	var parts []string
	for _, av := range [][2]string{{"CN", s.cn}, {"OU", s.ou}, {"O", s.o}, {"L", s.l}, {"ST", s.st}, {"C", s.c}} {
		if av[1] != "" {
			parts = append(parts, av[0]+"="+escapeRDNValue(av[1]))
		}
	}
	return strings.Join(parts, ","), len(parts) > 0
}

// escapeRDNValue escapes an attribute value for an RFC 4514 string.
func escapeRDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`,+"\<>;=`, c) >= 0,
			i == 0 && (c == '#' || c == ' '),
			i == len(v)-1 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
