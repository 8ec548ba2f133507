package server

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/formats/rpm"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server/store"
)

// errNoRPM answers an item that arrived empty: the bridge is to fetch a
// package named by NEVRA from Koji and forward it whole (§7.7, §7.10).
var errNoRPM = &refusal{status: protocol.CodeKojiError,
	message: "no package arrived: the bridge did not fetch it from Koji (is a Koji instance configured at the bridge?)"}

// rpmSigner signs packages for one sign-rpm or sign-rpms request: the
// OpenPGP key, the optional IMA file-signing key, and the options.
type rpmSigner struct {
	h        *Handlers
	user     string
	op       string
	key      string
	pk       *openpgp.Key
	fileKey  string
	file     crypto.Signer
	v3, head bool
	pins     [][]byte
	// koji is set for a request that names a Koji instance or asks for
	// the signature to be imported; kojiInstance is the instance's name,
	// "" for the bridge's default.
	koji         bool
	kojiInstance string
}

// newRPMSigner authenticates the request's user for its key and, if one
// is named, for its file-signing key (§7.10 steps 1-2), and refuses what
// signet cannot do.
func (h *Handlers) newRPMSigner(ctx context.Context, r *Request) (s *rpmSigner, err error) {
	// return-data and import-signature are the bridge's business (§7.7,
	// §7.10); the server signs the same way and returns the result.
	importSig, err := optBool(r, "import-signature", false)
	if err != nil {
		return nil, err
	}
	if _, err := optBool(r, "return-data", true); err != nil {
		return nil, err
	}
	inst, named := r.Fields["koji-instance"]
	v3, err := optBool(r, "v3-signature", false)
	if err != nil {
		return nil, err
	}
	head := false
	if r.Op == "sign-rpms" {
		if head, err = optBool(r, "head-signing", false); err != nil {
			return nil, err
		}
	}
	ka, err := h.keyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	signer := &rpmSigner{h: h, user: r.User, op: r.Op, key: ka.Key.Name, v3: v3, head: head, pins: [][]byte{ka.PIN},
		koji: named || importSig, kojiInstance: string(inst)}
	s = signer
	defer func() {
		if err != nil {
			signer.Close() // s is nil by now
		}
	}()
	if s.pk, err = h.openpgpKey(ka); err != nil {
		return nil, err
	}
	if fk, ok := r.Fields["file-signing-key"]; ok {
		fka, err := h.Auth.KeyUser(ctx, r.User, string(fk), r.Secrets["file-signing-key-passphrase"], false)
		if err != nil {
			return nil, err
		}
		s.pins = append(s.pins, fka.PIN)
		s.fileKey = fka.Key.Name
		if s.file, err = h.signer(fka); err != nil {
			return nil, err
		}
	}
	if v3 && head {
		return nil, &refusal{status: protocol.CodeUnknownError, message: "--v3-signature needs the whole package: it cannot be combined with --head-signing"}
	}
	return s, nil
}

// sigkey is the signing key's id as Koji names it: the last 8 hex digits
// of the key id, lower case.
func (s *rpmSigner) sigkey() string { return fmt.Sprintf("%08x", uint32(s.pk.KeyID())) }

// Close forgets the PINs.
func (s *rpmSigner) Close() {
	for _, p := range s.pins {
		clear(p)
	}
}

// signed is one signed package (or, with head signing, its signature
// header) and what the audit record says of it.
type signed struct {
	payload io.Reader
	size    int64
	audit   string
	digest  string
}

// sign checks one package against the request's fields and its own
// digests and signs it (§7.6 steps 4-7, §7.10). Refusals carry the codes
// of §6.3: CORRUPT_RPM, UNAUTHENTICATED_RPM, or UNKNOWN_ERROR with a
// message for a field that does not match the package.
func (s *rpmSigner) sign(fields map[string][]byte, ra io.ReaderAt, size int64, authenticated bool) (*signed, error) {
	if size == 0 {
		return nil, errNoRPM
	}
	if size <= int64(protocol.KojiErrorMaxLen) {
		// The bridge's Koji part failed: it says why in place of the RPM.
		b := make([]byte, size)
		if _, err := ra.ReadAt(b, 0); err == nil || err == io.EOF {
			if msg, ok := protocol.KojiErrorMessage(b); ok {
				return nil, &refusal{status: protocol.CodeKojiError, message: "bridge: " + msg}
			}
		}
	}
	p, err := rpm.Read(ra, size)
	if err != nil {
		return nil, corrupt(err)
	}
	nevra := p.NEVRA()
	audit := fmt.Sprintf("nevra=%s header-sha256=%x", nevra, p.HeaderSHA256())
	// A package the bridge fetched from Koji is bound to what the client
	// asked for only by rpm-sigmd5 (the client's payload MAC cannot
	// cover bytes it never sent): the whole package must be here, and
	// its MD5 over header and payload must be rpm-sigmd5. Checked below
	// (comparison with the stored SIGMD5, then Verify, which recomputes
	// it over the bytes), in head mode too.
	_, hasMD5 := fields["rpm-sigmd5"]
	if s.koji || (hasMD5 && !authenticated) {
		inst := s.kojiInstance
		if inst == "" {
			inst = "(default)"
		}
		audit += fmt.Sprintf(" koji-instance=%s sigkey=%s", inst, s.sigkey())
	}
	for name, got := range map[string]string{"rpm-name": nevra.Name, "rpm-epoch": nevra.Epoch,
		"rpm-version": nevra.Version, "rpm-release": nevra.Release, "rpm-arch": nevra.Arch} {
		if want, ok := fields[name]; ok && string(want) != got {
			return nil, &refusal{status: protocol.CodeUnknownError, message: fmt.Sprintf("%s %q does not match the package (%q)", name, want, got)}
		}
	}
	sigmd5, hasMD5 := fields["rpm-sigmd5"]
	if hasMD5 && len(sigmd5) != 16 {
		return nil, &refusal{status: protocol.CodeUnknownError, message: fmt.Sprintf("rpm-sigmd5 is %d bytes, want 16 (an MD5 digest)", len(sigmd5))}
	}
	if hasMD5 && !bytes.Equal(sigmd5, p.SigMD5()) {
		return nil, &refusal{status: protocol.CodeUnknownError, message: fmt.Sprintf("rpm-sigmd5 %x does not match the package (%x)", sigmd5, p.SigMD5())}
	}
	if !hasMD5 && !authenticated {
		return nil, &refusal{status: protocol.CodeUnauthenticatedRPM, message: "the package's payload MAC does not verify and no rpm-sigmd5 was sent"}
	}
	opts := rpm.SignOptions{Key: s.pk, Time: s.h.now(), V3: s.v3, FileSigner: s.file}
	if s.head {
		return s.signHead(p, ra, authenticated, audit, opts)
	}
	// Verified before anything is signed (a corrupt package costs no token
	// operation); Sign checks the bytes again as it copies them, in case
	// the spooled file changed in between. The second read comes from
	// the page cache.
	if err := p.Verify(ra); err != nil {
		return nil, corrupt(err)
	}
	f, n, err := spoolOutput(s.h.SpoolDir, func(w io.Writer) error { return rpm.Sign(w, ra, p, opts) })
	if err != nil {
		return nil, corrupt(err)
	}
	return &signed{payload: f, size: n, audit: audit, digest: "sha256:" + hex.EncodeToString(p.HeaderSHA256())}, nil
}

// signHead signs a package for head signing (§7.8) and returns only its
// new signature header. What arrived is either the whole package (the 1.2
// client sends local files whole; signet's client does so for a package
// without payload digest) or its headers and a few payload bytes
// (signet's client otherwise). Either way it must be what the client's
// payload MAC covers: rpm-sigmd5 vouches for header and payload, so it
// can stand in for the MAC only when the whole package is here for the
// server to check the MD5 over it.
func (s *rpmSigner) signHead(p *rpm.Package, ra io.ReaderAt, authenticated bool, audit string, opts rpm.SignOptions) (*signed, error) {
	whole, err := p.Whole()
	if err != nil {
		return nil, corrupt(err)
	}
	if !authenticated && !whole {
		return nil, &refusal{status: protocol.CodeUnauthenticatedRPM, message: "head signing: the payload MAC does not verify over the bytes that arrived, which are only the package's headers; rpm-sigmd5 cannot vouch for a payload the server never saw"}
	}
	if whole {
		// As without head signing: the whole package is checked, and
		// with it the MD5 that rpm-sigmd5 matched.
		if err := p.Verify(ra); err != nil {
			return nil, corrupt(err)
		}
		audit += " head-signing whole-package"
	} else {
		// The payload digest is checked by whoever installs the package,
		// against the signed header.
		if err := p.VerifyHeader(); err != nil {
			return nil, corrupt(err)
		}
		audit += " head-signing"
	}
	hdr, err := p.SignatureHeader(ra, opts)
	if err != nil {
		return nil, corrupt(err)
	}
	return &signed{payload: bytes.NewReader(hdr), size: int64(len(hdr)), audit: audit,
		digest: "sha256:" + hex.EncodeToString(p.HeaderSHA256())}, nil
}

// corrupt gives format errors their reply: CORRUPT_RPM, or a message for
// a package that head signing cannot sign (it needs a header+payload
// signature).
func corrupt(err error) error {
	switch {
	case errors.Is(err, rpm.ErrCorrupt):
		return &refusal{status: protocol.CodeCorruptRPM, message: err.Error()}
	case errors.Is(err, rpm.ErrIncomplete):
		return &refusal{status: protocol.CodeUnknownError, message: err.Error() + "; send the whole package (signet's client does so by itself for a package without payload digest)"}
	}
	return err
}

func (h *Handlers) signRPM(ctx context.Context, r *Request) (*Response, error) {
	s, err := h.newRPMSigner(ctx, r)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	ra, err := payloadAt(r)
	if err != nil {
		return nil, err
	}
	out, err := s.sign(r.Fields, ra, r.PayloadSize, r.PayloadAuthenticated)
	if err != nil {
		return nil, err
	}
	return &Response{Payload: out.payload, PayloadSize: out.size, Audit: out.audit}, nil
}

// payloadAt returns the request payload as an io.ReaderAt.
func payloadAt(r *Request) (io.ReaderAt, error) {
	if r.PayloadAt != nil {
		return r.PayloadAt, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Payload, r.PayloadSize))
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

func (h *Handlers) signRPMs(ctx context.Context, r *Request) (*Response, error) {
	s, err := h.newRPMSigner(ctx, r)
	if err != nil {
		return nil, err
	}
	audit := ""
	if s.head {
		audit = "head-signing"
	}
	return &Response{Batch: s, Audit: audit}, nil
}

// Sign implements Batch: one sub-request of sign-rpms.
func (s *rpmSigner) Sign(ctx context.Context, it *BatchItem) *BatchResult {
	res := &BatchResult{Audit: store.AuditRecord{Actor: s.user, Operation: s.op, KeyName: s.key}}
	detail := fmt.Sprintf("item=%d id=%x size=%d", it.Seq, it.ID, it.Size)
	out, err := s.sign(it.Fields, it.Payload, it.Size, it.Authenticated)
	var ref *refusal
	switch {
	case err == nil:
		res.Payload, res.Size = out.payload, out.size
		res.Audit.Detail, res.Audit.Digest, res.Audit.Result = detail+" "+out.audit, out.digest, "ok"
		return res
	case errors.As(err, &ref):
		res.Status, res.Message = ref.status, ref.message
	default:
		s.h.log().Error("sign-rpms item failed", "user", s.user, "key", s.key, "item", it.Seq, "err", err)
		res.Status, res.Message = protocol.CodeUnknownError, err.Error()
	}
	res.Audit.Detail, res.Audit.Result = detail, err.Error()
	return res
}

// Record implements Batch: the items' audit records, in one transaction.
func (s *rpmSigner) Record(ctx context.Context, results []*BatchResult) error {
	recs := make([]store.AuditRecord, len(results))
	for i, r := range results {
		recs[i] = r.Audit
	}
	_, err := s.h.Store.AppendAudits(ctx, recs)
	return err
}
