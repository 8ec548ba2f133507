package main

// `signet-server token change-pin`: the token's user PIN changes, and every
// stored access rewraps the new PIN or is removed to be granted again.

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/secret"
	"github.com/signet-project/signet/server"
)

func (a *app) changePINCmd() *cobra.Command {
	var newPINFile, passFile string
	var newPINFD, passFD int
	var regrant, dryRun bool
	c := &cobra.Command{
		Use:   "change-pin",
		Short: "Change the token's user PIN and rewrap every stored access for it",
		Long: `change-pin changes the token's user PIN (the current one from --pin-file,
the new one from --new-pin-file, or asked for twice) and, in the same step,
wraps the new PIN for every access whose user's passphrase is given in
--passphrases-file: one line per access, KEY, USER and PASSPHRASE separated
by tabs (the passphrase is the rest of the line). The file holds secrets:
keep it private, and destroy it afterwards.

Without the passphrase of every access, the change is refused and the
accesses that lack one are listed; with --regrant those accesses are
removed instead and must be granted again (key grant). A passphrase that
does not unwrap the current PIN refuses the whole change. --dry-run lists
what would happen and changes nothing.

The token changes first, then every access row and the audit record in one
database transaction; if the transaction fails, the token's PIN is set back.
Afterwards update the server's pin_file or systemd credential, if it has
one. A YubiHSM 2's PIN is an authentication key: change it with Yubico's
tools, then grant the accesses again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.with(cmd, true, false, func(s *session) error {
				var passes []server.AccessPassphrase
				if passFile != "" || passFD > 0 {
					raw, err := secret.Source{What: "access passphrases", File: passFile, FD: passFD, Batch: true}.Read()
					if err != nil {
						return err
					}
					defer clear(raw)
					if passes, err = parseAccessPassphrases(raw); err != nil {
						return err
					}
				}
				newPIN, err := a.read("new token user PIN", newPINFile, newPINFD, true)
				if err != nil {
					return err
				}
				defer clear(newPIN)
				res, err := s.admin.ChangePIN(cmd.Context(), server.ChangePINRequest{
					NewPIN: newPIN, Passphrases: passes, Regrant: regrant, DryRun: dryRun})
				out := cmd.OutOrStdout()
				verb := map[bool]string{true: "would be ", false: ""}[dryRun]
				for _, n := range res.Rewrapped {
					fmt.Fprintf(out, "%-32s %srewrapped for the new PIN\n", n, verb)
				}
				for _, n := range res.Regrant {
					state := "removed: grant it again"
					if err != nil || dryRun {
						state = "has no passphrase: would be removed with --regrant"
					}
					fmt.Fprintf(out, "%-32s %s\n", n, state)
				}
				if err != nil {
					return err
				}
				if !dryRun {
					fmt.Fprintln(out, "token PIN changed; update the server's pin_file or credential if it has one")
				}
				return nil
			})
		},
	}
	secretFlags(c, "new-pin", "new token user PIN", &newPINFile, &newPINFD)
	secretFlags(c, "passphrases", "access passphrases (KEY<TAB>USER<TAB>PASSPHRASE per line)", &passFile, &passFD)
	c.Flags().BoolVar(&regrant, "regrant", false, "remove the accesses without a passphrase (to be granted again) instead of refusing")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be rewrapped and removed; change nothing")
	return c
}

// parseAccessPassphrases reads KEY<TAB>USER<TAB>PASSPHRASE lines. Error
// messages name the line, never its passphrase.
func parseAccessPassphrases(raw []byte) ([]server.AccessPassphrase, error) {
	var out []server.AccessPassphrase
	seen := map[string]bool{}
	for i, line := range bytes.Split(raw, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		parts := bytes.SplitN(line, []byte("\t"), 3)
		if len(parts) != 3 || len(parts[0]) == 0 || len(parts[1]) == 0 || len(parts[2]) == 0 {
			return nil, fmt.Errorf("access passphrases, line %d: want KEY, USER and PASSPHRASE separated by tabs", i+1)
		}
		key, user := string(parts[0]), string(parts[1])
		if seen[key+"\x00"+user] {
			return nil, fmt.Errorf("access passphrases, line %d: %s/%s is given twice", i+1, key, user)
		}
		seen[key+"\x00"+user] = true
		if strings.ContainsAny(key+user, " ") {
			return nil, fmt.Errorf("access passphrases, line %d: key and user names have no spaces (separate the fields with tabs)", i+1)
		}
		out = append(out, server.AccessPassphrase{Key: key, User: user, Passphrase: bytes.Clone(parts[2])})
	}
	return out, nil
}
