// This file holds `signet-server token ...`: list, init and check
// (change-pin is in changepin.go).

package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server"
)

func (a *app) tokenCmd() *cobra.Command {
	c := group(&cobra.Command{Use: "token", Short: "Inspect and initialise PKCS#11 tokens"})

	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens of the configured module (labels, serials, sessions)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mod := a.cfg.Token.Module
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
			defer clear(so)
			pin, err := a.read("new token user PIN", a.pinFile, a.pinFD, true)
			if err != nil {
				return err
			}
			defer clear(pin)
			ti, err := hsm.InitToken(a.cfg.Token.Module, label, so, pin)
			// There is no database yet: the step goes to the transcript only.
			e := server.TranscriptEntry{Time: time.Now().UTC(), Actor: actor(), Operation: "token-init",
				Detail: fmt.Sprintf("label %q serial %q module %s", label, ti.Serial, a.cfg.Token.Module), Result: "ok"}
			if err != nil {
				e.Result = "error: " + err.Error()
			}
			line, _ := json.Marshal(e)
			t := &lazyFile{path: a.cfg.Transcript}
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
						err = hsm.CheckPair(hk)
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
	c.AddCommand(list, initc, check, a.changePINCmd())
	return c
}
