package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/client"
)

// commands returns Sigul's client commands that signet's server serves,
// with Sigul's names, positional arguments and options (Sigul 1.2
// src/client.py).
func (a *app) commands() []*cobra.Command {
	var cmds []*cobra.Command
	add := func(c *cobra.Command) *cobra.Command {
		c.DisableFlagsInUseLine = true
		cmds = append(cmds, c)
		return c
	}
	// conn wraps a command body: check options, connect, run.
	conn := func(body func(args []string) error) func(*cobra.Command, []string) error {
		return func(_ *cobra.Command, args []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			return body(args)
		}
	}
	printList := func(l []string, err error) error {
		if err != nil {
			return err
		}
		for _, s := range l {
			fmt.Fprintln(a.stdout, s)
		}
		return nil
	}

	add(&cobra.Command{Use: "list-users", Short: "List users", Args: nargs(0, ""),
		RunE: conn(func([]string) error {
			pw, err := a.adminPassword()
			if err != nil {
				return err
			}
			return printList(a.client.ListUsers(a.ctx, pw))
		})})

	var newAdmin, withPassword bool
	nu := add(&cobra.Command{Use: "new-user [options] USER", Short: "Add a user", Args: nargs(1, "user name"),
		RunE: conn(func(args []string) error {
			pw, err := a.adminPassword()
			if err != nil {
				return err
			}
			var np []byte
			if newAdmin || withPassword {
				if np, err = a.readNewSecret("New user's password: ", "New user's password (again): "); err != nil {
					clear(pw)
					return err
				}
			}
			return a.client.NewUser(a.ctx, client.NewUserRequest{Name: args[0], Admin: newAdmin, Password: pw, NewPassword: np})
		})})
	nu.Flags().BoolVar(&newAdmin, "admin", false, "Make the user an administrator (implies --with-password)")
	nu.Flags().BoolVar(&withPassword, "with-password", false, "Define a password for the user")

	add(&cobra.Command{Use: "delete-user USER", Short: "Delete a user", Args: nargs(1, "user name"),
		RunE: conn(func(args []string) error {
			pw, err := a.adminPassword()
			if err != nil {
				return err
			}
			return a.client.DeleteUser(a.ctx, client.DeleteUserRequest{Name: args[0], Password: pw})
		})})

	add(&cobra.Command{Use: "user-info USER", Short: "Show information about a user", Args: nargs(1, "user name"),
		RunE: conn(func(args []string) error {
			pw, err := a.adminPassword()
			if err != nil {
				return err
			}
			admin, err := a.client.UserInfo(a.ctx, client.UserInfoRequest{Name: args[0], Password: pw})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Administrator: %s\n", boolText(admin))
			return nil
		})})

	var muAdmin, muNewName string
	var muChange bool
	mu := add(&cobra.Command{Use: "modify-user [options] USER", Short: "Modify a user", Args: nargs(1, "user name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if muAdmin == "" && muNewName == "" && !muChange {
				return usagef("nothing to do")
			}
			var admin *bool
			if muAdmin != "" {
				v, err := yesNo(muAdmin, "admin")
				if err != nil {
					return err
				}
				admin = &v
			}
			return conn(func(args []string) error {
				pw, err := a.adminPassword()
				if err != nil {
					return err
				}
				var np []byte
				if muChange {
					if np, err = a.readNewSecret("New password: ", "New password (again): "); err != nil {
						clear(pw)
						return err
					}
				}
				return a.client.ModifyUser(a.ctx, client.ModifyUserRequest{Name: args[0], Admin: admin, NewName: muNewName, Password: pw, NewPassword: np})
			})(cmd, args)
		}})
	mu.Flags().StringVar(&muAdmin, "admin", "", `Is the user an administrator ("yes" or "no")?`)
	mu.Flags().StringVar(&muNewName, "new-name", "", "Change user's name")
	mu.Flags().BoolVar(&muChange, "change-password", false, "Change user's password")

	add(&cobra.Command{Use: "key-user-info USER KEY", Short: "Show information about user's key access",
		Args: nargs(2, "user name and key name"),
		RunE: conn(func(args []string) error {
			pw, err := a.adminPassword()
			if err != nil {
				return err
			}
			access, keyAdmin, err := a.client.KeyUserInfo(a.ctx, client.KeyUserInfoRequest{User: args[0], Key: args[1], Password: pw})
			if err != nil {
				return err
			}
			if !access {
				fmt.Fprintln(a.stdout, "No access defined")
			} else {
				fmt.Fprintf(a.stdout, "Access defined, key administrator: %s\n", boolText(keyAdmin))
			}
			return nil
		})})

	var mkuAdmin string
	mku := add(&cobra.Command{Use: "modify-key-user [options] USER KEY", Short: "Modify user's key access",
		Args: nargs(2, "user name and key name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mkuAdmin == "" {
				return usagef("nothing to do")
			}
			v, err := yesNo(mkuAdmin, "key-admin")
			if err != nil {
				return err
			}
			return conn(func(args []string) error {
				pw, err := a.adminPassword()
				if err != nil {
					return err
				}
				return a.client.ModifyKeyUser(a.ctx, client.ModifyKeyUserRequest{User: args[0], Key: args[1], KeyAdmin: v, Password: pw})
			})(cmd, args)
		}})
	mku.Flags().StringVar(&mkuAdmin, "key-admin", "", `Is the user a administrator of this key ("yes" or "no")?`)

	add(&cobra.Command{Use: "list-keys", Short: "List keys", Args: nargs(0, ""),
		RunE: conn(func([]string) error {
			pw, err := a.adminPassword()
			if err != nil {
				return err
			}
			return printList(a.client.ListKeys(a.ctx, pw))
		})})

	var nk client.NewKeyOptions
	var nkOut string
	newKey := add(&cobra.Command{Use: "new-key [options] KEY", Short: "Add a key", Args: nargs(1, "key name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkDate(nk.ExpireDate); err != nil {
				return err
			}
			return conn(func(args []string) error {
				pw, err := a.adminPassword()
				if err != nil {
					return err
				}
				pass, err := a.readNewSecret("Passphrase for the new key: ", "Passphrase for the new key (again): ")
				if err != nil {
					clear(pw)
					return err
				}
				return a.writeOutput(nkOut, func(w io.Writer) error {
					return a.client.NewKey(a.ctx, client.NewKeyRequest{Key: args[0], NewKeyOptions: nk, Password: pw, Passphrase: pass}, w)
				})
			})(cmd, args)
		}})
	newKey.Flags().StringVar(&nk.KeyAdmin, "key-admin", "", "Initial key administrator")
	newKey.Flags().StringVar(&nk.KeyType, "key-type", "gnupg", "Key type: gnupg, RSA or ECC")
	newKey.Flags().StringVar(&nk.NameReal, "gnupg-name-real", "", "Real name of key subject (alias --name-real)")
	newKey.Flags().StringVar(&nk.NameComment, "gnupg-name-comment", "", "A comment about of key subject (alias --name-comment)")
	newKey.Flags().StringVar(&nk.NameEmail, "gnupg-name-email", "", "E-mail of key subject (alias --name-email)")
	newKey.Flags().StringVar(&nk.ExpireDate, "gnupg-expire-date", "", "Key expiration date, YYYY-MM-DD (alias --expire-date)")
	aliasFlags(newKey, map[string]string{"name-real": "gnupg-name-real", "name-comment": "gnupg-name-comment",
		"name-email": "gnupg-name-email", "expire-date": "gnupg-expire-date"})
	newKey.Flags().StringVarP(&nkOut, "output", "o", "", "Write the public key to this file (signet; default: standard output)")

	var ikAdmin, ikType string
	ik := add(&cobra.Command{Use: "import-key [options] KEY FILE", Short: "Import a key",
		Args: nargs(2, "key name and input file path"),
		RunE: conn(func(args []string) error {
			pw, err := a.adminPassword()
			if err != nil {
				return err
			}
			pass, err := a.keyPassphrase()
			if err != nil {
				clear(pw)
				return err
			}
			np, err := a.readNewSecret("New key passphrase: ", "New key passphrase (again): ")
			if err != nil {
				clear(pw)
				clear(pass)
				return err
			}
			f, size, err := openInput(args[1])
			if err != nil {
				clear(pw)
				clear(pass)
				clear(np)
				return err
			}
			defer f.Close()
			return a.client.ImportKey(a.ctx, client.ImportKeyRequest{Key: args[0], KeyType: ikType, KeyAdmin: ikAdmin, In: f, Size: size,
				Password: pw, Passphrase: pass, NewPassphrase: np})
		})})
	ik.Flags().StringVar(&ikAdmin, "key-admin", "", "Initial key administrator")
	ik.Flags().StringVar(&ikType, "key-type", "", "Key type: gnupg (default), RSA or ECC")

	add(&cobra.Command{Use: "delete-key KEY", Short: "Delete a key", Args: nargs(1, "key name"),
		RunE: conn(func(args []string) error {
			pw, err := a.adminPassword()
			if err != nil {
				return err
			}
			return a.client.DeleteKey(a.ctx, client.DeleteKeyRequest{Key: args[0], Password: pw})
		})})

	var mkNewName string
	mk := add(&cobra.Command{Use: "modify-key [options] KEY", Short: "Modify a key", Args: nargs(1, "key name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mkNewName == "" {
				return usagef("nothing to do")
			}
			return conn(func(args []string) error {
				pw, err := a.adminPassword()
				if err != nil {
					return err
				}
				return a.client.ModifyKey(a.ctx, client.ModifyKeyRequest{Key: args[0], NewName: mkNewName, Password: pw})
			})(cmd, args)
		}})
	mk.Flags().StringVar(&mkNewName, "new-name", "", "Change name of the key")

	var lkuPW bool
	lku := add(&cobra.Command{Use: "list-key-users [options] KEY", Short: "List users that can access a key",
		Args: nargs(1, "key name"),
		RunE: conn(func(args []string) error {
			auth, err := a.keyAuth(lkuPW)
			if err != nil {
				return err
			}
			return printList(a.client.ListKeyUsers(a.ctx, client.ListKeyUsersRequest{Key: args[0], Auth: auth}))
		})})
	lku.Flags().BoolVar(&lkuPW, "password", false, "Use a password to authenticate a server administrator")

	var gkaBind bindingFlags
	gka := add(&cobra.Command{Use: "grant-key-access [options] KEY USER", Short: "Grant key access to a user",
		Args: nargs(2, "key name and user name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			binding, err := gkaBind.check(cmd)
			if err != nil {
				return err
			}
			return conn(func(args []string) error {
				pass, err := a.keyPassphrase()
				if err != nil {
					return err
				}
				np, err := a.readNewSecret("Key passphrase for the new user: ", "Key passphrase for the new user (again): ")
				if err != nil {
					clear(pass)
					return err
				}
				return a.client.GrantKeyAccess(a.ctx, client.GrantKeyAccessRequest{Key: args[0], User: args[1], Passphrase: pass, NewPassphrase: np, ServerBinding: binding})
			})(cmd, args)
		}})
	gkaBind.add(gka)

	var ckeDate, ckeSubkey string
	cke := add(&cobra.Command{Use: "change-key-expiration [options] KEY", Short: "Change key expiration date",
		Args: nargs(1, "key name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkDate(ckeDate); err != nil {
				return err
			}
			if ckeSubkey != "" && strings.Trim(ckeSubkey, "0123456789") != "" {
				return usagef("invalid subkey identifier")
			}
			return conn(func(args []string) error {
				pass, err := a.keyPassphrase()
				if err != nil {
					return err
				}
				return a.client.ChangeKeyExpiration(a.ctx, client.ChangeKeyExpirationRequest{Key: args[0], ExpireDate: ckeDate, Subkey: ckeSubkey, Passphrase: pass})
			})(cmd, args)
		}})
	cke.Flags().StringVar(&ckeDate, "expire-date", "", "Key expiration date (YYYY-MM-DD; default: never)")
	cke.Flags().StringVar(&ckeSubkey, "subkey", "", "Subkey identifier")

	var rkaPW bool
	rka := add(&cobra.Command{Use: "revoke-key-access [options] KEY USER", Short: "Revoke key access from a user",
		Args: nargs(2, "key name and user name"),
		RunE: conn(func(args []string) error {
			auth, err := a.keyAuth(rkaPW)
			if err != nil {
				return err
			}
			return a.client.RevokeKeyAccess(a.ctx, client.RevokeKeyAccessRequest{Key: args[0], User: args[1], Auth: auth})
		})})
	rka.Flags().BoolVar(&rkaPW, "password", false, "Use a password to authenticate a server administrator")

	var gpkPW bool
	var gpkOut string
	gpk := add(&cobra.Command{Use: "get-public-key [options] KEY", Short: "Output public part of the key",
		Args: nargs(1, "key name"),
		RunE: conn(func(args []string) error {
			auth, err := a.keyAuth(gpkPW)
			if err != nil {
				return err
			}
			return a.writeOutput(gpkOut, func(w io.Writer) error {
				return a.client.GetPublicKey(a.ctx, client.GetPublicKeyRequest{Key: args[0], Auth: auth}, w)
			})
		})})
	gpk.Flags().BoolVar(&gpkPW, "password", false, "Use a password to authenticate a server administrator")
	gpk.Flags().StringVarP(&gpkOut, "output", "o", "", "Write output to this file (signet; default: standard output)")

	var cpBind bindingFlags
	cp := add(&cobra.Command{Use: "change-passphrase [options] KEY", Short: "Change key passphrase", Args: nargs(1, "key name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			binding, err := cpBind.check(cmd)
			if err != nil {
				return err
			}
			return conn(func(args []string) error {
				pass, err := a.keyPassphrase()
				if err != nil {
					return err
				}
				np, err := a.readNewSecret("New key passphrase: ", "New key passphrase (again): ")
				if err != nil {
					clear(pass)
					return err
				}
				return a.client.ChangePassphrase(a.ctx, client.ChangePassphraseRequest{Key: args[0], Passphrase: pass, NewPassphrase: np, ServerBinding: binding})
			})(cmd, args)
		}})
	cpBind.add(cp)

	add(&cobra.Command{Use: "list-binding-methods", Short: "List bind methods supported by client", Args: nargs(0, ""),
		Long: `List the passphrase binding methods signet's client supports, one a line:
none (signet keeps keys in a token, and wraps the token PIN for each key
and user under the user's passphrase).`,
		RunE: func(*cobra.Command, []string) error {
			for _, m := range clientBindingMethods {
				fmt.Fprintln(a.stdout, m)
			}
			if len(clientBindingMethods) == 0 && a.verbose > 0 {
				fmt.Fprintln(a.stderr, "signet: the client supports no passphrase binding methods")
			}
			return nil
		}})

	add(&cobra.Command{Use: "list-server-binding-methods", Short: "List bind methods supported by server", Args: nargs(0, ""),
		RunE: conn(func([]string) error {
			pw, err := a.adminPassword()
			if err != nil {
				return err
			}
			return printList(a.client.ListBindingMethods(a.ctx, pw))
		})})

	var stOut string
	st := add(&cobra.Command{Use: "sign-text [options] KEY FILE", Short: "Output a cleartext signature of a text",
		Args: nargs(2, "key name and input file path"),
		RunE: conn(func(args []string) error {
			return a.sign(args, stOut, func(pass []byte, in io.Reader, size int64, w io.Writer) error {
				return a.client.SignText(a.ctx, client.SignTextRequest{Key: args[0], Passphrase: pass, In: in, Size: size}, w)
			})
		})})
	st.Flags().StringVarP(&stOut, "output", "o", "", "Write output to this file")

	var sdOut string
	var sdArmor bool
	sd := add(&cobra.Command{Use: "sign-data [options] KEY FILE", Short: "Create a detached signature",
		Args: nargs(2, "key name and input file path"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sdOut == "" && !sdArmor && a.stdoutIsTTY() {
				return usagef("won't write output to a TTY, specify a file name")
			}
			return conn(func(args []string) error {
				return a.sign(args, sdOut, func(pass []byte, in io.Reader, size int64, w io.Writer) error {
					return a.client.SignData(a.ctx, client.SignDataRequest{Key: args[0], Armor: sdArmor, Passphrase: pass, In: in, Size: size}, w)
				})
			})(cmd, args)
		}})
	sd.Flags().StringVarP(&sdOut, "output", "o", "", "Write output to this file")
	sd.Flags().BoolVarP(&sdArmor, "armor", "a", false, "Enable GnuPG armoring of the result")

	for _, c := range append(append(a.rpmCommands(), a.peCommands()...), a.pgpCommands()...) {
		add(c)
	}
	return cmds
}

// sign reads the passphrase, opens the input and writes the verified result.
func (a *app) sign(args []string, out string, do func(pass []byte, in io.Reader, size int64, w io.Writer) error) error {
	return a.signMode(args, out, 0o644, do)
}

// signMode is sign with the output file's mode (less the umask).
func (a *app) signMode(args []string, out string, perm os.FileMode, do func(pass []byte, in io.Reader, size int64, w io.Writer) error) error {
	pass, err := a.keyPassphrase()
	if err != nil {
		return err
	}
	defer clear(pass)
	f, size, err := openInput(args[1])
	if err != nil {
		return err
	}
	defer f.Close()
	return a.writeOutputMode(out, perm, func(w io.Writer) error { return do(pass, f, size, w) })
}
