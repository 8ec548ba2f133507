package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) auditCmd() *cobra.Command {
	c := group(&cobra.Command{Use: "audit", Short: "Check and show the hash-chained audit log"})

	var expect string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit chain and report the first broken link",
		Long: `verify walks the audit chain from its first record and reports the first
record whose hash, link to the previous record, or position is wrong.

It ends by printing the last record's id and hash. Keep that line outside the
server (in the ceremony transcript, a ticket, a signed mail): a later
'verify --expect ID:HASH' then also detects records removed from the end or a
chain rewritten from some point on, which the chain alone cannot.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var wantID int64
			var wantHash []byte
			if expect != "" {
				id, h, ok := strings.Cut(expect, ":")
				var err error
				if wantID, err = strconv.ParseInt(id, 10, 64); !ok || err != nil || wantID < 1 {
					return fmt.Errorf("--expect %q: want ID:HASH as verify printed it", expect)
				}
				if wantHash, err = hex.DecodeString(h); err != nil || len(wantHash) != 32 {
					return fmt.Errorf("--expect %q: the hash must be 64 hex digits", expect)
				}
			}
			return a.with(cmd, false, false, func(s *session) error {
				ctx := cmd.Context()
				n, err := s.admin.Store.VerifyAudit(ctx)
				if err != nil {
					return fmt.Errorf("%w (%d records before it verified)", err, n)
				}
				last, err := s.admin.Store.LastAudit(ctx)
				if err != nil {
					return err
				}
				if wantID > 0 {
					recs, err := s.admin.Store.ListAudit(ctx, wantID-1, 1)
					if err != nil {
						return err
					}
					if len(recs) == 0 {
						return fmt.Errorf("record %d is gone: the log ends at record %d (records were removed from the end)", wantID, last.ID)
					}
					if !bytes.Equal(recs[0].Hash, wantHash) {
						return fmt.Errorf("record %d has hash %x, not the expected %x: the chain was rewritten", wantID, recs[0].Hash, wantHash)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "audit chain OK: %d records\nlast record: %d:%x\n", n, last.ID, last.Hash)
				return nil
			})
		},
	}
	verify.Flags().StringVar(&expect, "expect", "", "ID:HASH of a record kept outside the server, which must still be there unchanged")

	var lastN int
	show := &cobra.Command{
		Use:   "show",
		Short: "Print audit records as JSON lines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.with(cmd, false, false, func(s *session) error {
				ctx := cmd.Context()
				last, err := s.admin.Store.LastAudit(ctx)
				if err != nil {
					return err
				}
				recs, err := s.admin.Store.ListAudit(ctx, max(0, last.ID-int64(lastN)), lastN)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				for _, r := range recs {
					if err := enc.Encode(struct {
						ID        int64  `json:"id"`
						At        string `json:"at"`
						Server    string `json:"server,omitempty"`
						Actor     string `json:"actor"`
						Operation string `json:"operation"`
						Key       string `json:"key,omitempty"`
						Detail    string `json:"detail,omitempty"`
						Digest    string `json:"digest,omitempty"`
						Result    string `json:"result"`
						Hash      string `json:"hash"`
					}{r.ID, r.At.Format("2006-01-02T15:04:05.000000Z07:00"), r.Server, r.Actor, r.Operation, r.KeyName, r.Detail, r.Digest, r.Result, hex.EncodeToString(r.Hash)}); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	show.Flags().IntVar(&lastN, "last", 20, "how many of the newest records to show")
	c.AddCommand(verify, show)
	return c
}
