package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/signet-project/signet/formats/rpm"
	"github.com/signet-project/signet/protocol"
)

// RPMFile is one package to sign: the file read, or the package's N-V-R.A
// in Koji, and where the signed package is written (the same path
// replaces the package, atomically; "" with KojiOnly).
type RPMFile struct {
	Path string
	// NEVRA, if set instead of Path, names a package in Koji (N-V-R.A,
	// as Koji's getRPM takes it): the client looks it up in
	// SignRPMOptions.Koji and sends no payload; the bridge fetches the
	// package from Koji (§7.2, §7.10).
	NEVRA  string
	Output string
}

// Name is the package as the user named it: its file or its N-V-R.A.
func (f RPMFile) Name() string {
	if f.NEVRA != "" {
		return f.NEVRA
	}
	return f.Path
}

// RPMResult is the outcome for one package of a batch: Err is nil when
// Output holds the signed package, verified.
type RPMResult struct {
	RPMFile
	Err error
}

// SignRPMOptions are the options of sign-rpm and sign-rpms (§7.10).
type SignRPMOptions struct {
	Key        string
	Passphrase []byte
	// FileSigningKey, if set, adds IMA signatures of every file, made
	// with that key (FileSigningPassphrase is the user's passphrase for
	// it).
	FileSigningKey        string
	FileSigningPassphrase []byte
	// V3Signature adds the header+payload signature.
	V3Signature bool
	// HeadSigning (sign-rpms only) sends only each package's headers and
	// splices the returned signature header into a copy of the package.
	HeadSigning bool
	// Progress, if set, is called once per package of a batch, in the
	// order the results arrive.
	Progress func(done, total int, r RPMResult)

	// Koji looks up the packages named by N-V-R.A (RPMFile.NEVRA), in
	// the Koji instance KojiInstance names ("" for the bridge's and the
	// client's default one); the bridge is told the instance with the
	// koji-instance field (-k).
	Koji         KojiLookup
	KojiInstance string
	// StoreInKoji has the bridge import each new signature into Koji
	// (import-signature, --store-in-koji).
	StoreInKoji bool
	// KojiOnly has the bridge return no signed package (return-data
	// false, --koji-only): the signature is only stored in Koji, which
	// StoreInKoji must then ask for. The reply carries no payload, and
	// its MAC, made over the signed package the client never sees, is
	// read and ignored (§6.5, the one such case).
	KojiOnly bool
}

// MaxSignatureHeader bounds a signature header returned by head signing.
const MaxSignatureHeader = 64 << 20

func (o *SignRPMOptions) fields(op string) (*fieldList, protocol.Fields, error) {
	fl := (&fieldList{}).str("key", o.Key)
	sec, err := secrets("passphrase", o.Passphrase)
	if o.FileSigningKey != "" {
		fl.str("file-signing-key", o.FileSigningKey)
		if err == nil {
			err = sec.Set("file-signing-key-passphrase", o.FileSigningPassphrase)
		}
	}
	if o.StoreInKoji {
		fl.boolean("import-signature", true)
	}
	if o.KojiOnly {
		fl.boolean("return-data", false)
		if !o.StoreInKoji && err == nil {
			err = errors.New("--koji-only is valid only with --store-in-koji")
		}
	}
	if o.KojiInstance != "" {
		fl.str("koji-instance", o.KojiInstance)
	}
	if o.V3Signature {
		fl.boolean("v3-signature", true)
	}
	if op == "sign-rpms" && o.HeadSigning {
		fl.boolean("head-signing", true)
		if o.V3Signature && err == nil {
			err = errors.New("--v3-signature needs the whole package: it cannot be combined with --head-signing")
		}
	}
	if err == nil {
		err = fl.err
	}
	return fl, sec, err
}

// SignRPM signs one package with sign-rpm (§7.10): the whole file goes to
// the server, which checks it and returns it signed; it is written to
// in.Output only once the reply verified. A package named by N-V-R.A is
// looked up in Koji first and sent without payload (the bridge fetches
// it); with KojiOnly nothing is written.
func (c *Client) SignRPM(ctx context.Context, opts SignRPMOptions, in RPMFile) error {
	fl, sec, err := opts.fields("sign-rpm")
	defer sec.Zero()
	if err != nil {
		return fmt.Errorf("sign-rpm: %w", err)
	}
	if in.NEVRA != "" {
		return c.signKojiRPM(ctx, &opts, fl, sec, in)
	}
	if opts.KojiOnly {
		// Sigul's client allows it; the bridge then stores the signature
		// in Koji and returns nothing to write.
		return c.signRPMKojiOnly(ctx, fl, sec, in)
	}
	f, fi, err := openRPM(in.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	return WriteFileAtomic(in.Output, fi.Mode().Perm(), func(w io.Writer) error {
		_, err := c.Do(ctx, &Request{Op: "sign-rpm", Fields: fl.f, Secrets: sec, Payload: f, PayloadSize: fi.Size()}, w)
		return err
	})
}

// signKojiRPM is SignRPM for a package in Koji: the look-up's fields,
// no payload and no payload-auth-sha512 (§7.10).
func (c *Client) signKojiRPM(ctx context.Context, opts *SignRPMOptions, fl *fieldList, sec protocol.Fields, in RPMFile) error {
	r, err := opts.lookup(ctx, in.NEVRA)
	if err != nil {
		return err
	}
	if err := kojiFields(&fl.f, r); err != nil {
		return &KojiError{NEVRA: in.NEVRA, Instance: opts.KojiInstance, Err: err}
	}
	req := &Request{Op: "sign-rpm", Fields: fl.f, Secrets: sec, NoPayloadAuth: true, KojiOnly: opts.KojiOnly}
	if opts.KojiOnly {
		_, err := c.Do(ctx, req, nil)
		return err
	}
	return WriteFileAtomic(in.Output, 0o644, func(w io.Writer) error {
		_, err := c.Do(ctx, req, w)
		return err
	})
}

// signRPMKojiOnly sends a local package for the bridge to store its
// signature in Koji, and writes nothing.
func (c *Client) signRPMKojiOnly(ctx context.Context, fl *fieldList, sec protocol.Fields, in RPMFile) error {
	f, fi, err := openRPM(in.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = c.Do(ctx, &Request{Op: "sign-rpm", Fields: fl.f, Secrets: sec, Payload: f, PayloadSize: fi.Size(), KojiOnly: true}, nil)
	return err
}

// openRPM opens an RPM and checks that it parses, so that what is not a
// package is reported here with its file name.
func openRPM(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err == nil {
		_, err = rpm.Read(f, fi.Size())
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, fi, nil
}

// SignRPMs signs many packages over one connection with sign-rpms (§7):
// the packages are sent back to back while the replies are read, and each
// signed package is written as soon as its reply verified. A package that
// fails does not stop the others: its result carries the error. The
// returned error is about the batch as a whole (authentication, the
// connection); results are returned in files' order either way.
//
// When the connection is lost mid-batch (not when a reply fails its
// integrity check, is refused or the batch ends cleanly), the batch
// resumes on a new connection, through the next bridge, with the packages
// that have no verified reply yet, up to Retry.Resumes times. Each
// package's result is reported once (Progress included): a package whose
// reply was lost may have been signed by a server, and is signed again;
// only the verified reply is written.
func (c *Client) SignRPMs(ctx context.Context, opts SignRPMOptions, files []RPMFile) ([]RPMResult, error) {
	results := make([]RPMResult, len(files))
	for i, f := range files {
		results[i].RPMFile = f
	}
	fl, sec, err := opts.fields("sign-rpms")
	defer sec.Zero()
	if err != nil {
		return results, fmt.Errorf("sign-rpms: %w", err)
	}
	b := &rpmBatch{c: c, opts: &opts, files: files, results: results,
		answered: make([]bool, len(files)), sent: make([]bool, len(files)),
		pkgs: make([]*rpm.Package, len(files)), koji: make([]*KojiRPM, len(files))}
	for _, f := range files {
		if f.NEVRA != "" && opts.HeadSigning && !opts.KojiOnly {
			return results, errors.New("sign-rpms: --head-signing returns only signature headers, and a package from Koji has no local copy to splice them into: add --store-in-koji --koji-only, or leave out --head-signing")
		}
	}
	// Every package named by N-V-R.A is looked up before the connection
	// opens; one Koji does not give is reported now, and not sent.
	if n, failed, d := b.lookupAll(ctx); n > 0 {
		c.log().Info("sign-rpms: looked the packages named by N-V-R.A up in Koji", "packages", n, "failed", failed, "seconds", d.Seconds())
	}
	resumes := c.Retry.withDefaults().Resumes
	for try := 0; ; try++ {
		// Each connection resends the packages that have no verified
		// reply yet (all of them the first time), with fresh keys.
		keys, kerr := protocol.GenerateSubKeys(nil)
		if kerr != nil {
			err = kerr
			break
		}
		b.start(keys)
		_, err = c.Do(ctx, &Request{Op: "sign-rpms", Fields: fl.f, Secrets: sec.Clone(), SubKeys: &keys, Sub: b.run}, nil)
		keys.Zero()
		left := b.left()
		if err != nil && left == 0 {
			// Every package has its verified reply: the connection
			// broke after the last one, which lost nothing.
			c.log().Info("sign-rpms: the connection broke after the last reply", "err", err)
			err = nil
		}
		if err == nil || left == 0 || !lostConnection(err) || ctx.Err() != nil || try >= resumes {
			break
		}
		c.avoid(c.last.Load())
		c.log().Warn("sign-rpms: the connection was lost mid-batch; resuming with the packages that have no reply yet",
			"left", left, "resume", try+1, "err", err)
	}
	// Every package gets a result, and one that says why: a connection
	// that died mid-batch leaves packages unanswered (and some unsent).
	b.mu.Lock()
	var missing []int
	for i := range files {
		if !b.answered[i] {
			missing = append(missing, i)
		}
	}
	replies := b.replies
	b.mu.Unlock()
	for _, i := range missing {
		b.finish(i, b.unanswered(i, replies, err))
	}
	return results, err
}

// start prepares the batch for a connection: the packages without a
// reply are to be sent again, under keys.
func (b *rpmBatch) start(keys protocol.SubKeys) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keys = keys
	b.todo = b.todo[:0]
	for i := range b.files {
		if !b.answered[i] {
			b.todo = append(b.todo, i)
			b.pkgs[i] = nil
			b.sent[i] = false
		}
	}
}

// left counts the packages without a result.
func (b *rpmBatch) left() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, a := range b.answered {
		if !a {
			n++
		}
	}
	return n
}

// ErrNotSigned is wrapped by the result of a package of a batch that got
// no reply: the batch ended before the server answered it.
var ErrNotSigned = errors.New("no reply from the server for this package")

// unanswered says why package i of the batch has no reply, given the
// number of sub-replies that arrived and the batch's error.
func (b *rpmBatch) unanswered(i, replies int, err error) error {
	b.mu.Lock()
	sent := b.sent[i]
	b.mu.Unlock()
	what := "sent"
	if !sent {
		what = "not sent"
	}
	if err != nil {
		return fmt.Errorf("%w (%s; the batch ended after %d of %d replies): %w", ErrNotSigned, what, replies, len(b.files), err)
	}
	hint := ""
	if b.opts.HeadSigning {
		hint = "; with --head-signing a Sigul 1.2 server checks whole files, so it ends the batch at the first package that did not fit in the headers sent: sign such packages without --head-signing"
	}
	return fmt.Errorf("%w (%s): the bridge or server ended the batch cleanly after %d of %d replies, without a word on this package; "+
		"the bridge's or the server's log says why it dropped the rest (a Sigul 1.2 server cannot report some per-package errors, §7.12)%s",
		ErrNotSigned, what, replies, len(b.files), hint)
}

type rpmBatch struct {
	c       *Client
	opts    *SignRPMOptions
	keys    protocol.SubKeys
	files   []RPMFile
	results []RPMResult

	mu       sync.Mutex
	todo     []int // the packages to send on this connection
	answered []bool
	sent     []bool         // sent on this connection
	pkgs     []*rpm.Package // parsed when sent on this connection
	koji     []*KojiRPM     // what Koji said of the packages named by N-V-R.A
	done     int
	replies  int // sub-replies read, on all connections
}

func (b *rpmBatch) finish(i int, err error) {
	b.mu.Lock()
	b.answered[i] = true
	b.results[i].Err = err
	b.done++
	done := b.done
	b.mu.Unlock()
	if b.opts.Progress != nil {
		b.opts.Progress(done, len(b.files), b.results[i])
	}
}

// run is the sub-phase: send and receive at the same time (§7.12).
func (b *rpmBatch) run(m *protocol.Mux) error {
	sent := make(chan error, 1)
	go func() { sent <- b.send(m) }()
	rerr := b.receive(m)
	serr := <-sent
	return errors.Join(serr, rerr)
}

// send writes one sub-request per package, then the outer EOF. A package
// that cannot be read is reported and skipped: it uses up no number
// (§7.5).
func (b *rpmBatch) send(m *protocol.Mux) error {
	out := m.Writer(protocol.Outer)
	w := protocol.NewSubRequestWriter(out, b.keys)
	for _, i := range b.todo {
		file := b.files[i]
		if file.NEVRA != "" {
			// From Koji: the look-up's fields and no payload; the
			// bridge fetches the package (§7.2).
			b.mu.Lock()
			r := b.koji[i]
			b.mu.Unlock()
			fields, err := subRequestIDField(uint32(i))
			if err == nil {
				err = kojiFields(&fields, r)
			}
			if err != nil {
				b.finish(i, &KojiError{NEVRA: file.NEVRA, Instance: b.opts.KojiInstance, Err: err})
				continue
			}
			b.mu.Lock()
			b.sent[i] = true
			b.mu.Unlock()
			if _, err := w.Write(fields, 0, nil); err != nil {
				return fmt.Errorf("sending %s: %w", file.NEVRA, err)
			}
			continue
		}
		f, fi, err := openRPM(file.Path)
		if err != nil {
			b.finish(i, err)
			continue
		}
		p, _ := rpm.Read(f, fi.Size())
		n := fi.Size()
		if b.opts.HeadSigning {
			if p.HeadSignable() {
				n = HeadPrefixLen(p)
			} else {
				b.c.log().Info("head signing: sending the whole package, whose main header has no payload digest (rpm before 4.14) or whose signature header records no size",
					"rpm", file.Path, "bytes", n)
			}
		}
		b.mu.Lock()
		b.pkgs[i] = p
		b.sent[i] = true
		b.mu.Unlock()
		fields, err := subRequestFields(uint32(i), p.NEVRA())
		if err == nil {
			_, err = w.Write(fields, uint64(n), io.NewSectionReader(f, 0, n))
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("sending %s: %w", file.Path, err)
		}
	}
	return out.Close()
}

// HeadPrefixLen is how much of a package signet's client sends for head
// signing (§7.8): the lead, both headers and the first payload bytes, in
// whole units of 4096 bytes, at least 16 bytes past the end of the main
// header, or the whole file if that is shorter. A Sigul 1.2 bridge reads
// in 4096-byte units until it has 16 bytes past the main header, and
// drops the whole request if the file ends before (the payload MAC covers
// exactly what is sent, so the bridge must forward it unchanged for the
// server to verify it, which this length makes it do).
func HeadPrefixLen(p *rpm.Package) int64 {
	const unit, past = 4096, 16
	n := (p.PayloadOffset + past + unit - 1) / unit * unit
	return min(n, p.Size)
}

func subRequestIDField(id uint32) (protocol.Fields, error) {
	var f protocol.Fields
	err := f.Set("id", binary.BigEndian.AppendUint32(nil, id))
	return f, err
}

func subRequestFields(id uint32, n rpm.NEVRA) (protocol.Fields, error) {
	var f protocol.Fields
	err := errors.Join(
		f.Set("id", binary.BigEndian.AppendUint32(nil, id)),
		f.SetStr("rpm-name", n.Name), f.SetStr("rpm-epoch", n.Epoch), f.SetStr("rpm-version", n.Version),
		f.SetStr("rpm-release", n.Release), f.SetStr("rpm-arch", n.Arch))
	return f, err
}

// receive reads sub-replies until the bridge's outer EOF and writes each
// signed package once its MACs verified (§7.9).
func (b *rpmBatch) receive(m *protocol.Mux) error {
	max := b.c.MaxReplyPayload
	if max == 0 {
		max = 1 << 40
	}
	if b.opts.HeadSigning {
		max = MaxSignatureHeader
	}
	rr := protocol.NewSubReplyReader(m.Reader(protocol.Outer), b.keys, max)
	for {
		r, err := rr.Next()
		if err == io.EOF && !m.Reader(protocol.Outer).EndedByMarker() {
			// A bridge ends the replies with the outer EOF marker; one
			// that closes without it lost its server, or is stopping.
			return fmt.Errorf("reading the replies: %w: the connection ended without the end of the replies", ErrNoReply)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the replies: %w", noReply(err))
		}
		b.mu.Lock()
		b.replies++
		b.mu.Unlock()
		id := r.Header.ID()
		if len(id) != 4 {
			return fmt.Errorf("sub-reply %d has an id of %d bytes", r.Seq, len(id))
		}
		i := int(binary.BigEndian.Uint32(id))
		b.mu.Lock()
		bad := i >= len(b.files) || b.answered[i] || !b.sent[i]
		b.mu.Unlock()
		if bad {
			return fmt.Errorf("sub-reply %d answers id %d, which was not sent or is already answered", r.Seq, i)
		}
		if code := r.Header.Status(); code != protocol.CodeOK {
			err := &Error{Op: "sign-rpms", Code: code, Message: r.Header.Message()}
			if ferr := r.Payload.Finish(); ferr != nil {
				return fmt.Errorf("sub-reply %d: %w", r.Seq, ferr)
			}
			b.finish(i, err)
			continue
		}
		if b.opts.KojiOnly {
			// The bridge stored the signature in Koji and dropped the
			// package; the MAC it forwards is over that package and
			// is read but cannot be checked (§6.5, §7.9 step 4).
			if n := r.Payload.Len(); n != 0 {
				return fmt.Errorf("sub-reply %d: %d bytes of payload with --koji-only, where the bridge must send none", r.Seq, n)
			}
			if err := r.Payload.Finish(); err != nil && !errors.Is(err, protocol.ErrIntegrity) {
				return fmt.Errorf("reading the replies: %w", noReply(err))
			}
			b.finish(i, nil)
			continue
		}
		pr := &streamReader{r: r.Payload}
		err = b.write(i, pr)
		if errors.Is(err, protocol.ErrIntegrity) {
			// The reply stream cannot be trusted any further.
			b.finish(i, err)
			return err
		}
		if pr.err != nil {
			// The stream broke inside this reply: the package has no
			// verified reply, as if its reply had not begun.
			return fmt.Errorf("reading the replies: %w", noReply(pr.err))
		}
		b.finish(i, err)
	}
}

// streamReader records an error of the reply stream (not io.EOF), to
// tell it from an error writing the output.
type streamReader struct {
	r   io.Reader
	err error
}

func (s *streamReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// write stores package i from a verified sub-reply payload: the whole
// signed package, or the signature header to splice into a copy.
func (b *rpmBatch) write(i int, payload io.Reader) error {
	file := b.files[i]
	perm := os.FileMode(0o644)
	if file.NEVRA == "" {
		fi, err := os.Stat(file.Path)
		if err != nil {
			return err
		}
		perm = fi.Mode().Perm()
	}
	if !b.opts.HeadSigning {
		return WriteFileAtomic(file.Output, perm, func(w io.Writer) error {
			_, err := io.Copy(w, payload)
			return err
		})
	}
	hdr, err := io.ReadAll(payload)
	if err != nil {
		return err
	}
	f, err := os.Open(file.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	b.mu.Lock()
	p := b.pkgs[i]
	b.mu.Unlock()
	return WriteFileAtomic(file.Output, perm, func(w io.Writer) error {
		return rpm.Splice(w, f, p, bytes.Clone(hdr))
	})
}
