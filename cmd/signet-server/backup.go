package main

// The backup ceremony: `token wrap-key create|import|show`, `key backup`
// and `key restore`.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server"
)

// addBackupCommands hangs the backup commands under `token` and `key`.
func (a *app) addBackupCommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		switch c.Name() {
		case "token":
			c.AddCommand(a.wrapKeyCmd())
		case "key":
			c.AddCommand(a.keyBackupCmd(), a.keyRestoreCmd())
		}
	}
}

// wrapProfile is the configured token's wrap profile: the default for its
// module, with token.wrap_mechanism overriding the mechanism.
func (a *app) wrapProfile(ti hsm.TokenInfo) (hsm.WrapProfile, error) {
	p := hsm.DefaultWrapProfile(ti)
	if s := a.cfg.Token.WrapMechanism; s != "" {
		m, err := hsm.ParseWrapMechanism(s)
		if err != nil {
			return p, fmt.Errorf("token.wrap_mechanism: %w", err)
		}
		p.Mechanism = m
	}
	return p, nil
}

// tokenProfile opens the configured token without logging in, for its
// description and wrap profile.
func (a *app) tokenProfile() (hsm.TokenInfo, hsm.WrapProfile, error) {
	tok, err := hsm.Open(a.tokenConfig())
	if err != nil {
		return hsm.TokenInfo{}, hsm.WrapProfile{}, err
	}
	ti := tok.Info()
	tok.Close()
	p, err := a.wrapProfile(ti)
	return ti, p, err
}

func (a *app) wrapKeyCmd() *cobra.Command {
	c := group(&cobra.Command{Use: "wrap-key", Short: "Create, split and import the wrap key that key backups are made under"})

	var (
		shares, threshold int
		outDir            string
		custodians        []string
	)
	create := &cobra.Command{
		Use:   "create --shares N --threshold M --out-dir DIR",
		Short: "Create a wrap key outside the token, split it M-of-N for custodians, and import it",
		Long: `create makes a new AES-256 wrap key in this process's memory (never in a
token), splits it with Shamir's scheme into N shares of which any M rebuild
it, writes each share to its own file in DIR (mode 0600, named after its
custodian, with a checksum so a mistyped share is refused), imports the key
into the configured token as a trusted wrap/unwrap key, and wipes it.

Importing needs the token's security-officer PIN (only the SO may mark a key
trusted) and its user PIN. Hand each file to its custodian and remove it
from DIR; any M custodians together can give the same key to another token
with 'token wrap-key import'. Fewer than M learn nothing about it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(custodians) > 0 && len(custodians) != shares {
				return fmt.Errorf("%d custodians named for %d shares: name one per share, or none", len(custodians), shares)
			}
			if shares < 2 || shares > hsm.MaxShares || threshold < 2 || threshold > shares {
				return fmt.Errorf("--threshold %d --shares %d: need 2 <= threshold <= shares <= %d", threshold, shares, hsm.MaxShares)
			}
			for _, c := range custodians {
				if err := hsm.CheckCustodian(c); err != nil {
					return err
				}
			}
			if err := noCoreDumps(); err != nil {
				return fmt.Errorf("disabling core dumps: %w", err)
			}
			ti, p, err := a.tokenProfile()
			if err != nil {
				return err
			}
			so, pin, err := a.wrapKeyPINs()
			if err != nil {
				return err
			}
			defer clear(so)
			defer clear(pin)
			if err := os.MkdirAll(outDir, 0o700); err != nil {
				return err
			}
			return a.with(cmd, false, true, func(s *session) error {
				key, err := hsm.NewWrapKey()
				if err != nil {
					return err
				}
				defer clear(key)
				id, _ := hsm.WrapKeyID(key)
				var cust []string
				if len(custodians) > 0 {
					cust = custodians
				}
				e := server.TranscriptEntry{Operation: "wrap-key-create"}
				parts, err := hsm.SplitWrapKey(key, threshold, shares, cust)
				if err != nil {
					return s.admin.RecordStep(cmd.Context(), e, err)
				}
				defer func() {
					for i := range parts {
						parts[i].Wipe()
					}
				}()
				var names, files []string
				for _, sh := range parts {
					names = append(names, sh.Custodian)
					files = append(files, filepath.Join(outDir, sh.FileName()))
				}
				e.Detail = fmt.Sprintf("wrap key %s, split %s: %d-of-%d shares for %s in %s; into token %q (serial %s)",
					id, parts[0].Split, threshold, shares, strings.Join(names, ", "), outDir, ti.Label, ti.Serial)
				if err := noneExists(files); err != nil {
					return s.admin.RecordStep(cmd.Context(), e, err)
				}
				if err := a.noWrapKeyYet(id); err != nil {
					return s.admin.RecordStep(cmd.Context(), e, err)
				}
				// Neither the share files nor the token are in the database:
				// the step is recorded before either is written, and not
				// done at all if it cannot be.
				if err := s.admin.RecordFirst(cmd.Context(), e); err != nil {
					return err
				}
				err = writeShares(parts, files)
				if err == nil {
					if _, err = hsm.InstallWrapKey(a.tokenConfig(), p, so, pin, key); err != nil {
						removeAll(files)
					}
				}
				if err != nil {
					return s.admin.RecordStep(cmd.Context(), e, err)
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "wrap key %s created and imported into token %q as a trusted wrap key (%s)\n", id, ti.Label, hsm.MechanismName(p.Mechanism))
				fmt.Fprintf(out, "%d shares, any %d of which rebuild it; give each file to its custodian only:\n", shares, threshold)
				for i, f := range files {
					fmt.Fprintf(out, "  %-16s %s\n", names[i], f)
				}
				return nil
			})
		},
	}
	create.Flags().IntVar(&shares, "shares", 0, "number of shares N, one per custodian (required)")
	create.Flags().IntVar(&threshold, "threshold", 0, "shares M needed to rebuild the key (required)")
	create.Flags().StringVar(&outDir, "out-dir", "", "directory for the share files, created 0700 if missing (required)")
	create.Flags().StringSliceVar(&custodians, "custodian", nil, "custodian names, one per share, in order (default share-1 ... share-N)")
	create.MarkFlagRequired("shares")
	create.MarkFlagRequired("threshold")
	create.MarkFlagRequired("out-dir")
	secretFlags(create, "so-pin", "security-officer PIN", &a.soPinFile, &a.soPinFD)

	var shareFiles []string
	imp := &cobra.Command{
		Use:   "import [--share FILE]...",
		Short: "Rebuild the wrap key from M custodians' shares and import it into the token",
		Long: `import reads M share files (--share, repeated; without it, asks for each
file's path in turn), checks each one's checksum, rebuilds the wrap key,
imports it into the configured token as a trusted wrap/unwrap key (with the
security-officer PIN and the user PIN), and wipes it. Fewer than M shares,
a share from another split and a mistyped share are refused before the
token is touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := noCoreDumps(); err != nil {
				return fmt.Errorf("disabling core dumps: %w", err)
			}
			ti, p, err := a.tokenProfile()
			if err != nil {
				return err
			}
			paths := shareFiles
			if len(paths) == 0 {
				if paths, err = a.askSharePaths(); err != nil {
					return err
				}
			}
			var parts []hsm.Share
			defer func() {
				for i := range parts {
					parts[i].Wipe()
				}
			}()
			for _, path := range paths {
				sh, err := readShare(path)
				if err != nil {
					return err
				}
				parts = append(parts, sh)
			}
			so, pin, err := a.wrapKeyPINs()
			if err != nil {
				return err
			}
			defer clear(so)
			defer clear(pin)
			return a.with(cmd, false, true, func(s *session) error {
				var idx, who []string
				for _, sh := range parts {
					idx = append(idx, fmt.Sprint(sh.Index))
					who = append(who, sh.Custodian)
				}
				e := server.TranscriptEntry{Operation: "wrap-key-import",
					Detail: fmt.Sprintf("wrap key %s into token %q (serial %s) from shares %s of %d, split %s, presented by custodians %s",
						parts[0].WrapKeyID, ti.Label, ti.Serial, strings.Join(idx, ", "), parts[0].Total, parts[0].Split, strings.Join(who, ", "))}
				key, err := hsm.CombineShares(parts)
				if err != nil {
					return s.admin.RecordStep(cmd.Context(), e, err)
				}
				defer clear(key)
				if err := a.noWrapKeyYet(parts[0].WrapKeyID); err != nil {
					return s.admin.RecordStep(cmd.Context(), e, err)
				}
				// The token is not in the database: the step is recorded
				// before the key goes in, and not done if it cannot be.
				if err := s.admin.RecordFirst(cmd.Context(), e); err != nil {
					return err
				}
				if _, err := hsm.InstallWrapKey(a.tokenConfig(), p, so, pin, key); err != nil {
					return s.admin.RecordStep(cmd.Context(), e, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrap key %s imported into token %q as a trusted wrap key (%s)\n", parts[0].WrapKeyID, ti.Label, hsm.MechanismName(p.Mechanism))
				return nil
			})
		},
	}
	imp.Flags().StringArrayVar(&shareFiles, "share", nil, "a custodian's share file (repeat for each; without it, prompts for the paths)")
	secretFlags(imp, "so-pin", "security-officer PIN", &a.soPinFile, &a.soPinFD)

	show := &cobra.Command{
		Use:   "show",
		Short: "Show the token's wrap key id and wrap mechanism",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := hsm.Open(a.tokenConfig())
			if err != nil {
				return err
			}
			defer tok.Close()
			p, err := a.wrapProfile(tok.Info())
			if err != nil {
				return err
			}
			id, err := tok.WrapKeyID()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %q: wrap key %s, mechanism %s\n", tok.Info().Label, id, hsm.MechanismName(p.Mechanism))
			return nil
		},
	}
	c.AddCommand(create, imp, show)
	return c
}

// noWrapKeyYet refuses, before the step is recorded as done, a token that
// visibly holds a wrap key already, so that this predictable refusal is
// recorded once, as a failure. Only what the token shows without a login
// is seen (SoftHSM2's wrap key is a public object); InstallWrapKey checks
// again, logged in, after the step is recorded.
func (a *app) noWrapKeyYet(id string) error {
	tok, err := hsm.Open(a.tokenConfig())
	if err != nil {
		return nil // InstallWrapKey reports it
	}
	defer tok.Close()
	have, err := tok.WrapKeyID()
	switch {
	case err != nil:
		return nil
	case have == id:
		return fmt.Errorf("hsm: token %q already holds wrap key %s", tok.Info().Label, id)
	}
	return fmt.Errorf("hsm: token %q already holds another wrap key, %s; signet expects one per token", tok.Info().Label, have)
}

// wrapKeyPINs reads the security-officer PIN and the user PIN.
func (a *app) wrapKeyPINs() (so, pin []byte, err error) {
	if so, err = a.read("security-officer PIN", a.soPinFile, a.soPinFD, false); err != nil {
		return nil, nil, err
	}
	if pin, err = a.read("token PIN", a.pinFile, a.pinFD, false); err != nil {
		clear(so)
		return nil, nil, err
	}
	return so, pin, nil
}

// askSharePaths asks on the terminal for share file paths, one at a time,
// until an empty line.
func (a *app) askSharePaths() ([]string, error) {
	if a.batch {
		return nil, errors.New("give the share files with --share (batch mode never prompts)")
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errors.New("give the share files with --share: there is no terminal to ask on")
	}
	defer tty.Close()
	r := bufio.NewReader(tty)
	var paths []string
	for len(paths) < hsm.MaxShares {
		fmt.Fprintf(tty, "Path of share file %d (empty line when done): ", len(paths)+1)
		line, err := r.ReadString('\n')
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		paths = append(paths, line)
		if err != nil {
			break
		}
	}
	if len(paths) == 0 {
		return nil, errors.New("no share files given")
	}
	return paths, nil
}

// readShare reads and checks one share file. Errors name the file, never
// its contents.
func readShare(path string) (hsm.Share, error) {
	f, err := os.Open(path)
	if err != nil {
		return hsm.Share{}, fmt.Errorf("share file %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	sh, err := hsm.ParseShare(f)
	if err != nil {
		return hsm.Share{}, fmt.Errorf("share file %s: %w", path, err)
	}
	return sh, nil
}

// noneExists refuses share files that exist already.
func noneExists(files []string) error {
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("%s already exists: refusing to overwrite a share", f)
		}
	}
	return nil
}

// writeShares writes each share to its file, mode 0600, refusing to
// replace an existing file. On failure it removes the files it wrote.
func writeShares(parts []hsm.Share, files []string) error {
	if err := noneExists(files); err != nil {
		return err
	}
	for i, sh := range parts {
		text := sh.Encode()
		err := writeNew(files[i], text, 0o600)
		clear(text)
		if err != nil {
			removeAll(files[:i])
			return err
		}
	}
	return nil
}

func removeAll(files []string) {
	for _, f := range files {
		os.Remove(f)
	}
}

// writeNew writes data to a new file at path atomically (a temporary file,
// synced, then linked to path, which fails if path exists).
func writeNew(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, errors.Unwrap(err))
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// backupOutput is a backup file written atomically with mode 0600: the
// temporary file is made first, so an unwritable destination is refused
// before the key is wrapped; Stage fills it, and Publish, called once the
// backup is recorded, links it to its name (server.BackupOutput).
type backupOutput struct {
	path string
	tmp  *os.File
	done bool
}

func createBackupOutput(path string) (*backupOutput, error) {
	if path == "" || path == "-" {
		return nil, errors.New("a backup goes to a file (-o FILE), not to stdout")
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return nil, fmt.Errorf("output %s is a directory", path)
		}
		return nil, fmt.Errorf("%s already exists: refusing to overwrite a backup", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, errors.Unwrap(err))
	}
	return &backupOutput{path: path, tmp: tmp}, nil
}

func (o *backupOutput) Stage(data []byte) error {
	_, err := o.tmp.Write(data)
	if err == nil {
		err = o.tmp.Chmod(0o600)
	}
	if err == nil {
		err = o.tmp.Sync()
	}
	if cerr := o.tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	return nil
}

func (o *backupOutput) Publish() error {
	if err := os.Link(o.tmp.Name(), o.path); err != nil {
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	os.Remove(o.tmp.Name())
	o.done = true
	return nil
}

func (o *backupOutput) abort() {
	if !o.done {
		o.tmp.Close()
		os.Remove(o.tmp.Name())
	}
}

func (a *app) keyBackupCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "backup NAME -o FILE",
		Short: "Write a key, wrapped under the token's wrap key, with its certificates to a backup file",
		Long: `backup asks the token to wrap the key (C_WrapKey under the trusted wrap key,
with the token's wrap mechanism) and writes one file (mode 0600, atomically,
never over an existing file) with the wrapped private key, the public key,
the key's metadata, OpenPGP certificate and X.509 certificates, and a MAC
made in the token under the wrap key. Only keys generated with --backup can
be backed up. Without M custodians' shares of the wrap key the file yields
nothing; restore it with 'key restore' on a token that holds the wrap key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := createBackupOutput(out)
			if err != nil {
				return err
			}
			defer o.abort()
			return a.with(cmd, true, false, func(s *session) error {
				p, err := a.wrapProfile(s.tok.Info())
				if err != nil {
					return err
				}
				if _, err := s.admin.BackupKey(cmd.Context(), args[0], p, out, o); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "backed up key %q to %s\n", args[0], out)
				return nil
			})
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "the backup file to write (required)")
	c.MarkFlagRequired("output")
	return c
}

func (a *app) keyRestoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Recreate a backed-up key in this token and database",
		Long: `restore checks the backup's MAC in the token (which needs the same wrap
key the backup was made under: 'token wrap-key import'), unwraps the private
key into the token (sensitive, and again extractable only under the wrap
key), creates its public key object, and records the key and its
certificates in the database. A key name or object id already used by a
different key is refused. Users' access does not travel with the key: grant
it again with 'key grant'; the command lists who had it on the source.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readBackupFile(args[0])
			if err != nil {
				return err
			}
			return a.with(cmd, true, true, func(s *session) error {
				p, err := a.wrapProfile(s.tok.Info())
				if err != nil {
					return err
				}
				k, b, err := s.admin.RestoreKey(cmd.Context(), data, p, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "restored %s key %q into token %q, id %x, OpenPGP fingerprint %s (backed up %s by %s from token %q)\n",
					k.KeyType, k.Name, s.admin.TokenName, k.ObjectID, k.Fingerprint, b.Created.Format(time.RFC3339), b.Actor, b.SourceToken)
				var users []string
				for _, u := range b.Key.Users {
					users = append(users, u.Name)
				}
				sort.Strings(users)
				if len(users) > 0 {
					fmt.Fprintf(out, "users with access on the source, to grant again here with 'key grant': %s\n", strings.Join(users, ", "))
				}
				return nil
			})
		},
	}
}

func readBackupFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, server.MaxBackupSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > server.MaxBackupSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a key backup", path, server.MaxBackupSize)
	}
	return data, nil
}
