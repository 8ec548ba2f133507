// This file holds `signet-server key ...`: generate, import, list, delete,
// grant, revoke and sign (export is in export.go).

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/internal/secret"
	"github.com/signet-project/signet/server"
)

func (a *app) keyCmd() *cobra.Command {
	c := group(&cobra.Command{Use: "key", Short: "Generate, import, list, delete, grant and export keys"})

	var types []string
	for _, t := range hsm.KeyTypes() {
		types = append(types, t.String())
	}
	var (
		keyType, owner, file string
		uids                 []string
		backup               bool
	)
	ownerPass := func() ([]byte, error) {
		if owner == "" {
			return nil, nil
		}
		return a.read("passphrase of "+owner+" for the new key", a.passFile, a.passFD, true)
	}
	generate := &cobra.Command{
		Use:   "generate NAME --type TYPE",
		Short: "Generate a key inside the token (sensitive; never extractable, or with --backup only wrapped)",
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
			defer clear(pass)
			return a.with(cmd, true, true, func(s *session) error {
				req := server.NewKeyRequest{Name: args[0], Type: kt, UserIDs: uids, Owner: owner, OwnerPassphrase: pass, Backup: backup}
				if backup {
					if req.BackupProfile, err = a.wrapProfile(s.tok.Info()); err != nil {
						return err
					}
				}
				k, err := s.admin.GenerateKey(cmd.Context(), req)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "generated %s key %q in token %q, id %x, OpenPGP fingerprint %s\n", k.KeyType, k.Name, k.Token, k.ObjectID, k.Fingerprint)
				return nil
			})
		},
	}
	generate.Flags().StringVar(&keyType, "type", "", "key type: "+strings.Join(types, ", ")+" (required)")
	generate.Flags().BoolVar(&backup, "backup", false, "make the key extractable, wrapped under the token's trusted wrap key only, so that 'key backup' can save it (chosen now, never later)")
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
			defer clear(data)
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
			defer clear(pass)
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
				fmt.Fprintln(w, "NAME\tTYPE\tTOKEN\tID\tCREATED\tFINGERPRINT\tUSERS\tBACKUP")
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
					bk := "no"
					if k.Backup {
						bk = "yes"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%x\t%s\t%s\t%s\t%s\n", k.Name, k.KeyType, k.Token, k.ObjectID,
						k.PGPCreated.Format(time.DateOnly), k.Fingerprint, strings.Join(users, ","), bk)
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
			defer clear(pass)
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
