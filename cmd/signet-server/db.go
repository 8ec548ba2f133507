package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/secret"
	"github.com/signet-project/signet/server/store"
)

func (a *app) dbCmd() *cobra.Command {
	c := group(&cobra.Command{Use: "db", Short: "Move the database between SQLite and PostgreSQL"})
	var from, to, pwFile string
	migrate := &cobra.Command{
		Use:   "migrate --from sqlite:PATH --to postgres://...",
		Short: "Copy a deployment's database, audit chain included, into an empty one and verify it",
		Long: `migrate copies every user, key, key access, certificate and audit record
from one database into another, empty one, with their row ids (the wrapped
PINs are bound to them) and the audit chain as it is, in one transaction.
It then checks the copy: every table's contents equal the source's, and the
copied audit chain verifies and ends with the source's last record. Last it
appends a db-migrate record to the target's chain and prints the new last
record: keep that line, as after 'audit verify'.

Stop every server using the source first. The source is brought to the
current schema version if it is older; the target must hold no rows.

Each side is sqlite:PATH or a postgres:// URL without a password; the
PostgreSQL password comes from --password-file, database_password_file,
database_password_credential or a passfile (PGPASSFILE, ~/.pgpass).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var pw []byte
			if pwFile != "" {
				var err error
				if pw, err = secret.ReadFile(pwFile, "database password"); err != nil {
					return err
				}
			} else {
				var err error
				if pw, err = a.databasePassword(); err != nil {
					return err
				}
			}
			defer clear(pw)
			open := func(flag, loc string, create bool) (*store.Store, error) {
				opts := store.Options{ServerName: a.cfg.Server.Name, Password: pw}
				if store.IsPostgres(loc) {
					return store.OpenWith(ctx, loc, opts)
				}
				path, ok := strings.CutPrefix(loc, "sqlite:")
				if !ok || path == "" {
					return nil, fmt.Errorf("--%s: want sqlite:PATH or a postgres:// URL", flag)
				}
				if !create {
					if _, err := os.Stat(path); err != nil {
						return nil, fmt.Errorf("--%s: %w", flag, err)
					}
				}
				return store.OpenWith(ctx, path, opts)
			}
			if from == "" || to == "" {
				return errors.New("give both --from and --to")
			}
			src, err := open("from", from, false)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := open("to", to, true)
			if err != nil {
				return err
			}
			defer dst.Close()
			if src.IsPostgres() == dst.IsPostgres() && src.Path() == dst.Path() {
				return errors.New("--from and --to name the same database")
			}
			rep, err := store.Copy(ctx, dst, src)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "copied %s to %s: %d users, %d keys, %d key accesses, %d certificates, %d audit records\n",
				src.Path(), dst.Path(), rep.Rows["users"], rep.Rows["keys"], rep.Rows["key_accesses"], rep.Rows["certificates"], rep.Rows["audit"])
			fmt.Fprintf(out, "verified: contents equal, audit chain OK: %d records, ends at the source's %d:%x\n",
				rep.AuditRecords, rep.Last.ID, rep.Last.Hash)
			rec, err := dst.AppendAudit(ctx, store.AuditRecord{Actor: actor(), Operation: "db-migrate",
				Detail: fmt.Sprintf(`{"from":%q,"to":%q,"source_last":"%d:%x"}`, src.Path(), dst.Path(), rep.Last.ID, rep.Last.Hash),
				Result: "ok"})
			if err != nil {
				return fmt.Errorf("recording the migration in the target's audit log: %w", err)
			}
			n, err := dst.VerifyAudit(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "audit chain OK: %d records\nlast record: %d:%x\n", n, rec.ID, rec.Hash)
			return nil
		},
	}
	f := migrate.Flags()
	f.StringVar(&from, "from", "", "source database: sqlite:PATH or postgres://... (no password)")
	f.StringVar(&to, "to", "", "target database, empty: postgres://... (no password) or sqlite:PATH")
	f.StringVar(&pwFile, "password-file", "", "read the PostgreSQL password from this file (private permissions)")
	c.AddCommand(migrate)
	return c
}
