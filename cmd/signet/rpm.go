package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/signet-project/signet/client"
)

// rpmFlags are the options sign-rpm and sign-rpms share.
type rpmFlags struct {
	output                 string
	storeInKoji, kojiOnly  bool
	kojiInstance           string
	v3                     bool
	fileSigningKey         string
	fileSigningKeyPassFile string
}

func (f *rpmFlags) add(c *cobra.Command, outputHelp string) {
	c.Flags().StringVarP(&f.output, "output", "o", "", outputHelp)
	c.Flags().BoolVar(&f.storeInKoji, "store-in-koji", false, "Store the generated signature in Koji (the bridge imports it)")
	c.Flags().BoolVar(&f.kojiOnly, "koji-only", false, "Do not save the signed package locally, store it only in Koji (needs --store-in-koji)")
	c.Flags().StringVarP(&f.kojiInstance, "koji-instance", "k", "", "Use this Koji instance (from [koji.instances] in the configuration)")
	c.Flags().BoolVar(&f.v3, "v3-signature", false, "Also add a header+payload signature")
	c.Flags().StringVar(&f.fileSigningKey, "file-signing-key", "", "Add IMA signatures of the package's files, made with this key")
	c.Flags().StringVar(&f.fileSigningKeyPassFile, "file-signing-key-passphrase-file", "", "Read the file-signing key's passphrase from this file")
}

// check applies Sigul's rules on the Koji options.
func (f *rpmFlags) check() error {
	if f.kojiOnly {
		if !f.storeInKoji {
			return usagef("--koji-only is valid only with --store-in-koji")
		}
		if f.output != "" {
			return usagef("--output can not be used together with --koji-only")
		}
	}
	return nil
}

// rpmArg makes an RPMFile of a command-line operand: a file if one
// exists by that name, otherwise a package in Koji if the name has the
// form N-V-R.A (Sigul's client looks up in Koji whatever is not a file;
// a name ending in .rpm is taken to be a missing file).
func rpmArg(arg string) client.RPMFile {
	if _, err := os.Stat(arg); err != nil && !strings.HasSuffix(arg, ".rpm") && client.LooksLikeNVRA(arg) {
		return client.RPMFile{NEVRA: arg}
	}
	return client.RPMFile{Path: arg}
}

// options checks the flags and reads the passphrases: the key's (as every
// signing command), then the file-signing key's (from its file, the next
// NUL-terminated secret with --batch, or a prompt). With packages from
// Koji among files it also connects the Koji look-ups.
func (f *rpmFlags) options(a *app, files []client.RPMFile) (client.SignRPMOptions, error) {
	var o client.SignRPMOptions
	o.StoreInKoji, o.KojiOnly, o.KojiInstance = f.storeInKoji, f.kojiOnly, f.kojiInstance
	for _, in := range files {
		if in.NEVRA != "" {
			o.Koji = a.kojiLookup(f.kojiInstance)
			break
		}
	}
	o.V3Signature = f.v3
	o.FileSigningKey = f.fileSigningKey
	var err error
	if o.Passphrase, err = a.keyPassphrase(); err != nil {
		return o, err
	}
	if f.fileSigningKey != "" {
		if f.fileSigningKeyPassFile != "" {
			o.FileSigningPassphrase, err = readPassphraseFile(f.fileSigningKeyPassFile)
		} else {
			o.FileSigningPassphrase, err = a.readSecret("File-signing key passphrase: ")
		}
		if err != nil {
			clear(o.Passphrase)
			return o, err
		}
	}
	return o, nil
}

func (a *app) rpmCommands() []*cobra.Command {
	var one rpmFlags
	signRPM := &cobra.Command{Use: "sign-rpm [options] KEY RPM-OR-NVRA", Short: "Sign an RPM package",
		Long: `Sign one RPM package. The whole package goes to the server, which checks
its digests and returns it signed; it is written to --output (default: the
input file, replaced atomically) only once the reply verified.

An operand that is not a file but has the form NAME-VERSION-RELEASE.ARCH
names a package in Koji (the instance -k gives, from [koji.instances] in
the configuration, or the default Koji configuration): the client looks it
up there and the bridge fetches it. --store-in-koji has the bridge import
the new signature into Koji; with --koji-only nothing is written locally.`,
		Args: nargs(2, "key name and RPM path or identification"),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := one.check(); err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			in := rpmArg(args[1])
			opts, err := one.options(a, []client.RPMFile{in})
			if err != nil {
				return err
			}
			defer clear(opts.Passphrase)
			defer clear(opts.FileSigningPassphrase)
			opts.Key = args[0]
			if !one.kojiOnly {
				in.Output = one.output
				if in.Output == "" {
					// As Sigul: in place, or a file named as the
					// operand for a package from Koji.
					in.Output = args[1]
				}
			}
			return a.client.SignRPM(a.ctx, opts, in)
		}}
	one.add(signRPM, "Write the signed package to this file (default: replace the input)")

	var many rpmFlags
	var head bool
	signRPMs := &cobra.Command{Use: "sign-rpms [options] KEY RPM-OR-NVRA...", Short: "Sign many RPM packages over one connection",
		Long: `Sign many RPM packages over one connection: they are sent back to back
while the signed ones come back, and each is written to the output
directory under its own name once its reply verified. With --head-signing
only each package's headers travel; the server returns a new signature
header, which is spliced into a copy of the package.

Operands that are not files but have the form NAME-VERSION-RELEASE.ARCH
name packages in Koji (the instance -k gives, from [koji.instances] in the
configuration, or the default Koji configuration): the client looks each
up there and sends no payload; the bridge fetches the package. With
--store-in-koji the bridge imports each new signature into Koji; with
--koji-only (no --output) nothing is written locally. A package Koji does
not know is reported (KOJI_ERROR) and the others are signed.

A package that fails does not stop the others: each failure is reported
with its file name, and the exit status is 1 if any failed.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("key name and at least one RPM path or identification expected")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if err := many.check(); err != nil {
				return err
			}
			if !many.kojiOnly {
				if many.output == "" {
					return usagef("--output DIR is required")
				}
				if fi, err := os.Stat(many.output); err != nil || !fi.IsDir() {
					return usagef("--output %s is not a directory", many.output)
				}
			}
			var files []client.RPMFile
			seen := map[string]string{}
			for _, p := range args[1:] {
				in := rpmArg(p)
				if !many.kojiOnly {
					base := filepath.Base(p)
					if in.NEVRA != "" {
						base += ".rpm"
					}
					if prev, dup := seen[base]; dup {
						return usagef("%s and %s would both be written to %s", prev, p, filepath.Join(many.output, base))
					}
					seen[base] = p
					in.Output = filepath.Join(many.output, base)
				}
				files = append(files, in)
			}
			if err := a.connect(); err != nil {
				return err
			}
			opts, err := many.options(a, files)
			if err != nil {
				return err
			}
			defer clear(opts.Passphrase)
			defer clear(opts.FileSigningPassphrase)
			opts.Key, opts.HeadSigning = args[0], head
			bar := a.progressBar(len(files))
			opts.Progress = func(done, total int, r client.RPMResult) {
				if r.Err != nil {
					bar.clear()
					fmt.Fprintf(a.stderr, "Error signing %s: %v\n", r.Name(), r.Err)
				}
				bar.show(done, total)
			}
			results, err := a.client.SignRPMs(a.ctx, opts, files)
			bar.clear()
			failed := 0
			for _, r := range results {
				if r.Err != nil {
					failed++
				}
			}
			if err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d packages were not signed", failed, len(files))
			}
			return nil
		}}
	many.add(signRPMs, "Write the signed packages to this directory (required)")
	signRPMs.Flags().BoolVar(&head, "head-signing", false, "Send only the packages' headers and splice the returned signature headers locally")
	return []*cobra.Command{signRPM, signRPMs}
}

// progress is a one-line progress bar on a terminal, and nothing otherwise.
type progress struct {
	a  *app
	on bool
}

func (a *app) progressBar(total int) *progress {
	f, ok := a.stderr.(*os.File)
	return &progress{a: a, on: ok && term.IsTerminal(int(f.Fd())) && total > 1}
}

func (p *progress) show(done, total int) {
	if !p.on {
		return
	}
	const width = 30
	n := width * done / total
	fmt.Fprintf(p.a.stderr, "\r[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(" ", width-n), done, total)
}

func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.a.stderr, "\r\033[K")
	}
}
