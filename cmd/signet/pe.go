package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/client"
)

// peCommands are sign-certificate and sign-pe, Secure Boot's two steps: a
// certificate chain for keys in the token, then Authenticode signatures.
func (a *app) peCommands() []*cobra.Command {
	var req client.CertificateRequest
	var certOut string
	sc := &cobra.Command{Use: "sign-certificate [options] ISSUER-KEY SUBJECT-KEY", Short: "Issue an X.509 certificate for a key",
		Long: `Issue an X.509 certificate for SUBJECT-KEY, signed by ISSUER-KEY with its
certificate --issuer-certificate (without it the certificate is a
self-signed CA of ISSUER-KEY itself). The server stores it under
SUBJECT-KEY as --subject-certificate, where sign-pe finds it, and returns
it in PEM form. The passphrase is the user's for ISSUER-KEY.`,
		Args: nargs(2, "issuer key name and subject key name"),
		RunE: func(_ *cobra.Command, args []string) error {
			if req.SubjectCertificate == "" || req.Subject == "" {
				return usagef("--subject-certificate and --subject are required")
			}
			if err := a.connect(); err != nil {
				return err
			}
			pass, err := a.keyPassphrase()
			if err != nil {
				return err
			}
			r := req
			r.IssuerKey, r.SubjectKey = args[0], args[1]
			return a.writeOutput(certOut, func(w io.Writer) error { return a.client.SignCertificate(a.ctx, r, pass, w) })
		}}
	sc.Flags().StringVarP(&certOut, "output", "o", "", "Write the certificate to this file (default: standard output)")
	sc.Flags().StringVar(&req.IssuerCertificate, "issuer-certificate", "", "Name of ISSUER-KEY's certificate that signs (default: self-signed)")
	sc.Flags().StringVar(&req.SubjectCertificate, "subject-certificate", "", "Name to store the new certificate under (required; ASCII letters)")
	sc.Flags().StringVar(&req.Subject, "subject", "", `Subject distinguished name, e.g. "CN=Secure Boot Signer,O=Example" (required)`)
	sc.Flags().StringVar(&req.Validity, "validity", "1y", "Validity, <N>y for N years")
	sc.Flags().StringVar(&req.Type, "certificate-type", "codesigning", "ca, codesigning or sslserver")

	var peOut string
	var replace bool
	sp := &cobra.Command{Use: "sign-pe [options] KEY CERT-NAME FILE", Short: "Sign a PE/EFI image with Authenticode",
		Long: `Sign a PE/EFI image (shim, GRUB, a kernel Image) with Authenticode, using
KEY and its stored certificate CERT-NAME. A signature the image already
carries is kept, and the new one added after it, unless --replace. The
signed image is written to --output only once the reply verified.`,
		Args: nargs(3, "key name, certificate name and image path"),
		RunE: func(_ *cobra.Command, args []string) error {
			if peOut == "" {
				return usagef("--output is required")
			}
			if err := a.connect(); err != nil {
				return err
			}
			return a.sign([]string{args[0], args[2]}, peOut, func(pass []byte, in io.Reader, size int64, w io.Writer) error {
				return a.client.SignPE(a.ctx, args[0], args[1], replace, pass, in, size, w)
			})
		}}
	sp.Flags().StringVarP(&peOut, "output", "o", "", "Write the signed image to this file (required)")
	sp.Flags().BoolVar(&replace, "replace", false, "Replace the image's signatures instead of adding one (signet extension)")
	return []*cobra.Command{sc, sp}
}
