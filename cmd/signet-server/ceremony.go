package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/cmd/internal/secret"
	"github.com/signet-project/signet/formats/openpgp"
	sx509 "github.com/signet-project/signet/formats/x509"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
)

func (a *app) tokenCmd() *cobra.Command {
	c := group(&cobra.Command{Use: "token", Short: "Inspect and initialise PKCS#11 tokens"})

	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens of the configured module (labels, serials, sessions)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mod := a.v.GetString("token.module")
			tokens, err := hsm.ListTokens(mod)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "MODULE\t%s\n", mod)
			fmt.Fprintln(w, "LABEL\tSERIAL\tMANUFACTURER\tMODEL\tSESSIONS\tMAX SESSIONS")
			for _, t := range tokens {
				if !t.Initialized {
					continue
				}
				maxS := "unreported"
				if t.MaxSessions > 0 {
					maxS = fmt.Sprint(t.MaxSessions)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", t.Label, t.Serial, t.Manufacturer, t.Model, t.Sessions, maxS)
			}
			return w.Flush()
		},
	}

	var label string
	initc := &cobra.Command{
		Use:   "init --label LABEL",
		Short: "Initialise a free slot as a new token (security-officer PIN and user PIN)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			so, err := a.read("security-officer PIN", a.soPinFile, a.soPinFD, true)
			if err != nil {
				return err
			}
			defer secret.Zero(so)
			pin, err := a.read("new token user PIN", a.pinFile, a.pinFD, true)
			if err != nil {
				return err
			}
			defer secret.Zero(pin)
			ti, err := hsm.InitToken(a.v.GetString("token.module"), label, so, pin)
			// There is no database yet: the step goes to the transcript only.
			e := server.TranscriptEntry{Time: time.Now().UTC(), Actor: actor(), Operation: "token-init",
				Detail: fmt.Sprintf("label %q serial %q module %s", label, ti.Serial, a.v.GetString("token.module")), Result: "ok"}
			if err != nil {
				e.Result = "error: " + err.Error()
			}
			line, _ := json.Marshal(e)
			t := &lazyFile{path: a.v.GetString("transcript")}
			_, terr := t.Write(append(line, '\n'))
			t.Close()
			if err != nil {
				return err
			}
			if terr != nil {
				return fmt.Errorf("token %q was initialised but the transcript could not be written: %w", label, terr)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "initialised token %q, serial %s\n", ti.Label, ti.Serial)
			return nil
		},
	}
	initc.Flags().StringVar(&label, "label", "", "label of the new token (required)")
	initc.MarkFlagRequired("label")
	secretFlags(initc, "so-pin", "security-officer PIN", &a.soPinFile, &a.soPinFD)

	check := &cobra.Command{
		Use:   "check",
		Short: "Log in, and check that every key in the database is in the token and signs",
		Long: `check logs in to the configured token, then for every key recorded in the
database finds it in the token, compares its public key with the database's,
signs a test message and verifies the signature. It exits non-zero if any
key is missing, differs, or fails to sign.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.with(cmd, true, false, func(s *session) error {
				ti := s.tok.Info()
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "token %q serial %s (%s %s): login OK, session cap %d\n", ti.Label, ti.Serial, ti.Manufacturer, ti.Model, s.tok.MaxSessions())
				keys, err := s.admin.Store.ListKeys(cmd.Context())
				if err != nil {
					return err
				}
				failed := 0
				for _, k := range keys {
					if k.Token != s.admin.TokenName {
						fmt.Fprintf(out, "%-24s skipped: on token %q\n", k.Name, k.Token)
						continue
					}
					hk, _, err := s.admin.Signer(cmd.Context(), k.Name)
					if err == nil {
						err = testSign(hk)
					}
					if err != nil {
						failed++
						fmt.Fprintf(out, "%-24s FAILED: %v\n", k.Name, err)
						continue
					}
					fmt.Fprintf(out, "%-24s OK (%s, id %s)\n", k.Name, k.KeyType, hk.IDHex())
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d keys failed the check", failed, len(keys))
				}
				return nil
			})
		},
	}
	c.AddCommand(list, initc, check)
	return c
}

// testSign signs a fixed message with k and verifies it with Go's crypto.
func testSign(k *hsm.Key) error {
	msg := []byte("signet token check")
	d := sha256.Sum256(msg)
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		sig, err := k.Sign(nil, d[:], crypto.SHA256)
		if err != nil {
			return err
		}
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
	case *ecdsa.PublicKey:
		sig, err := k.Sign(nil, d[:], crypto.SHA256)
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(pub, d[:], sig) {
			return errors.New("the token's ECDSA signature does not verify")
		}
	case ed25519.PublicKey:
		sig, err := k.Sign(nil, msg, crypto.Hash(0))
		if err != nil {
			return err
		}
		if !ed25519.Verify(pub, msg, sig) {
			return errors.New("the token's Ed25519 signature does not verify")
		}
	}
	return nil
}

func (a *app) keyCmd() *cobra.Command {
	c := group(&cobra.Command{Use: "key", Short: "Generate, import, list, delete, grant and export keys"})

	var types []string
	for _, t := range hsm.KeyTypes {
		types = append(types, t.String())
	}
	var (
		keyType, owner, file string
		uids                 []string
	)
	ownerPass := func() ([]byte, error) {
		if owner == "" {
			return nil, nil
		}
		return a.read("passphrase of "+owner+" for the new key", a.passFile, a.passFD, true)
	}
	generate := &cobra.Command{
		Use:   "generate NAME --type TYPE",
		Short: "Generate a key inside the token (sensitive, never extractable)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kt, err := hsm.ParseKeyType(keyType)
			if err != nil {
				return err
			}
			pass, err := ownerPass()
			if err != nil {
				return err
			}
			defer secret.Zero(pass)
			return a.with(cmd, true, true, func(s *session) error {
				k, err := s.admin.GenerateKey(cmd.Context(), server.NewKeyRequest{Name: args[0], Type: kt, UserIDs: uids, Owner: owner, OwnerPassphrase: pass})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "generated %s key %q in token %q, id %x, OpenPGP fingerprint %s\n", k.KeyType, k.Name, k.Token, k.ObjectID, k.Fingerprint)
				return nil
			})
		},
	}
	generate.Flags().StringVar(&keyType, "type", "", "key type: "+strings.Join(types, ", ")+" (required)")
	generate.MarkFlagRequired("type")

	importc := &cobra.Command{
		Use:   "import NAME --file FILE",
		Short: "Move an existing private key (PEM, or a gpg secret key export) into the token",
		Long: `import stores an existing private key in the token as a sensitive,
non-extractable object. FILE is an unencrypted PEM key (PKCS#8, PKCS#1 or
SEC1) or what 'gpg --export-secret-keys [--armor] KEYID' writes, with or
without a passphrase. An OpenPGP key keeps its creation time and user ids,
so its fingerprint and key id (the ones in published RPM-GPG-KEY files) do
not change. Delete the file and every other copy of the key afterwards.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readKeyFile(file)
			if err != nil {
				return err
			}
			defer secret.Zero(data)
			in, err := server.ParseImport(data, func() ([]byte, error) {
				return a.read("passphrase of the OpenPGP key being imported", a.keyPassFile, a.keyPassFD, false)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			pass, err := ownerPass()
			if err != nil {
				return err
			}
			defer secret.Zero(pass)
			return a.with(cmd, true, true, func(s *session) error {
				k, err := s.admin.ImportKey(cmd.Context(), server.NewKeyRequest{Name: args[0], UserIDs: uids, Owner: owner, OwnerPassphrase: pass}, in)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "imported %s key %q into token %q, id %x, OpenPGP fingerprint %s\n", k.KeyType, k.Name, k.Token, k.ObjectID, k.Fingerprint)
				return nil
			})
		},
	}
	importc.Flags().StringVar(&file, "file", "", "the key file ('-' for stdin) (required)")
	importc.MarkFlagRequired("file")
	secretFlags(importc, "key-passphrase", "passphrase of the OpenPGP key being imported", &a.keyPassFile, &a.keyPassFD)

	for _, cmd := range []*cobra.Command{generate, importc} {
		cmd.Flags().StringArrayVar(&uids, "uid", nil, "OpenPGP user id for the key's certificate, e.g. 'Fedora 43 <fedora-43@fedoraproject.org>' (repeatable)")
		cmd.Flags().StringVar(&owner, "owner", "", "existing user to grant the new key to, as key admin")
		secretFlags(cmd, "passphrase", "owner's new passphrase for the key", &a.passFile, &a.passFD)
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys in the database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.with(cmd, false, false, func(s *session) error {
				keys, err := s.admin.Store.ListKeys(cmd.Context())
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tTYPE\tTOKEN\tID\tCREATED\tFINGERPRINT\tUSERS")
				for _, k := range keys {
					acc, err := s.admin.Store.ListAccesses(cmd.Context(), k.Name)
					if err != nil {
						return err
					}
					var users []string
					for _, u := range acc {
						n := u.UserName
						if u.KeyAdmin {
							n += "*"
						}
						users = append(users, n)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%x\t%s\t%s\t%s\n", k.Name, k.KeyType, k.Token, k.ObjectID,
						k.PGPCreated.Format(time.DateOnly), k.Fingerprint, strings.Join(users, ","))
				}
				return w.Flush()
			})
		},
	}

	var yes, forgetMissing bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Destroy a key in the token and remove it, and every access to it, from the database",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.with(cmd, true, false, func(s *session) error {
				k, err := s.admin.Store.GetKey(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if !yes && !secret.Confirm(fmt.Sprintf("Destroy %s key %q (fingerprint %s)? This cannot be undone.", k.KeyType, k.Name, k.Fingerprint), a.batch) {
					return errors.New("not confirmed: nothing deleted (use --yes in batch mode)")
				}
				if err := s.admin.DeleteKey(cmd.Context(), args[0], forgetMissing); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted key %q\n", args[0])
				return nil
			})
		},
	}
	del.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	del.Flags().BoolVar(&forgetMissing, "forget-missing", false, "if the key is no longer in the token, remove its database entry")

	var keyAdmin bool
	grant := &cobra.Command{
		Use:   "grant KEY USER",
		Short: "Let a user sign with a key, under a passphrase of their own",
		Long: `grant wraps the token PIN under the user's new passphrase for this key
(Argon2id, then AES-256-GCM bound to the key's public key and the user) and
stores it.
The user gives that passphrase with each request.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pass, err := a.read("passphrase of "+args[1]+" for key "+args[0], a.passFile, a.passFD, true)
			if err != nil {
				return err
			}
			defer secret.Zero(pass)
			return a.with(cmd, true, false, func(s *session) error {
				if err := s.admin.Grant(cmd.Context(), args[0], args[1], pass, keyAdmin); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "granted key %q to %s\n", args[0], args[1])
				return nil
			})
		},
	}
	grant.Flags().BoolVar(&keyAdmin, "key-admin", false, "the user may also grant and revoke access to this key")
	secretFlags(grant, "passphrase", "user's new passphrase for the key", &a.passFile, &a.passFD)

	revoke := &cobra.Command{
		Use:   "revoke KEY USER",
		Short: "Remove a user's access to a key",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.with(cmd, false, false, func(s *session) error {
				if err := s.admin.Revoke(cmd.Context(), args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %s's access to key %q\n", args[1], args[0])
				return nil
			})
		},
	}
	var signFormat, signOut string
	var armor bool
	sign := &cobra.Command{
		Use:   "sign KEY FILE",
		Short: "Sign a file with a key in the ceremony (OpenPGP detached, or the bare signature)",
		Long: `sign signs FILE with KEY directly, to test a new key or to sign a statement
during a ceremony. --format openpgp (default) writes an OpenPGP detached
signature (--armor for ASCII armor), checked with 'gpg --verify'; --format raw
writes the bare signature (RSA PKCS#1 v1.5 or ECDSA over SHA-256, SHA-384 for
P-384; Ed25519 over the file), checked with 'openssl dgst -verify' or
'openssl pkeyutl -verify -rawin'.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var f server.SignFormat
			switch signFormat {
			case "openpgp":
				f = server.SignOpenPGP
			case "raw":
				if armor {
					return errors.New("--armor applies to --format openpgp only")
				}
				f = server.SignRaw
			default:
				return fmt.Errorf("unknown --format %q: openpgp or raw", signFormat)
			}
			data, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			o, err := createOutput(signOut)
			if err != nil {
				return err
			}
			defer o.abort()
			return a.with(cmd, true, false, func(s *session) error {
				sig, err := s.admin.SignFile(cmd.Context(), args[0], data, f)
				if err != nil {
					return err
				}
				if armor {
					if sig, err = openpgp.Armor(sig, "PGP SIGNATURE"); err != nil {
						return err
					}
				}
				return o.commit(sig)
			})
		},
	}
	sign.Flags().StringVar(&signFormat, "format", "openpgp", "openpgp or raw")
	sign.Flags().BoolVar(&armor, "armor", false, "ASCII-armor an OpenPGP signature")
	sign.Flags().StringVarP(&signOut, "output", "o", "", "write the signature to this file (atomically) instead of stdout")
	c.AddCommand(generate, importc, list, del, grant, revoke, sign, a.exportCmd())
	return c
}

func readKeyFile(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB: not a key file", path)
	}
	return data, nil
}

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

func (a *app) userCmd() *cobra.Command {
	c := group(&cobra.Command{Use: "user", Short: "Add, delete and list users"})
	var admin, force bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user; an admin (--admin) also gets a password for administration",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pw []byte
			if admin {
				var err error
				if pw, err = a.read("administration password of "+args[0], a.pwFile, a.pwFD, true); err != nil {
					return err
				}
				defer secret.Zero(pw)
			}
			return a.with(cmd, false, true, func(s *session) error {
				if err := s.admin.AddUser(cmd.Context(), args[0], admin, pw); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added user %s\n", args[0])
				return nil
			})
		},
	}
	add.Flags().BoolVar(&admin, "admin", false, "a server administrator (Sigul's admin flag)")
	secretFlags(add, "password", "admin's password", &a.pwFile, &a.pwFD)

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user (refused while they have key access, unless --force)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.with(cmd, false, false, func(s *session) error {
				if err := s.admin.DeleteUser(cmd.Context(), args[0], force); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", args[0])
				return nil
			})
		},
	}
	del.Flags().BoolVar(&force, "force", false, "also remove the user's key accesses")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.with(cmd, false, false, func(s *session) error {
				users, err := s.admin.Store.ListUsers(cmd.Context())
				if err != nil {
					return err
				}
				var b bytes.Buffer
				for _, u := range users {
					b.WriteString(u.Name)
					if u.Admin {
						b.WriteString(" (admin)")
					}
					b.WriteByte('\n')
				}
				_, err = cmd.OutOrStdout().Write(b.Bytes())
				return err
			})
		},
	}
	c.AddCommand(add, del, list)
	return c
}
