package bridge

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/signet-project/signet/internal/koji"
	"github.com/signet-project/signet/protocol"
)

// KojiInstance is one Koji the bridge fetches RPMs from and imports
// signatures into (PROTOCOL-v1 §7.7, §7.10), as Sigul's bridge does.
type KojiInstance struct {
	// HubURL is the hub's XML-RPC endpoint, e.g.
	// https://koji.example.org/kojihub.
	HubURL string
	// TopURL is where Koji serves its files (packages/...).
	TopURL string
	// TLS holds the CA that signs the hub's certificate and the bridge's
	// client certificate, with which it logs in on behalf of the
	// requesting user (the hub must list it in ProxyDNs). It also
	// serves an https TopURL.
	TLS *tls.Config
	// Timeout bounds each hub call and each download (default 10 min).
	Timeout time.Duration
}

// DefaultKojiTimeout is KojiInstance.Timeout's default.
const DefaultKojiTimeout = 10 * time.Minute

// maxSigHeader bounds a signature header the bridge reads from a signed
// RPM to import it (IMA file signatures make it grow with the file count).
const maxSigHeader = 64 << 20

// kojiJob is the Koji side of one request: the instance, a session logged
// in as the requesting user when signatures are to be imported, and the
// RPMs looked up, by sub-request id ("" for sign-rpm).
type kojiJob struct {
	b         *Bridge
	name      string
	inst      *KojiInstance
	instErr   error
	user      string
	importSig bool
	maxSize   uint64

	mu      sync.Mutex
	client  *koji.Client
	ready   bool
	loginEr error
	rpms    map[string]*koji.RPMInfo
}

// newKojiJob returns the Koji side of a request h, or nil if the request
// needs no Koji.
func (b *Bridge) newKojiJob(spec protocol.OpSpec, h *protocol.RequestHeader, maxSize uint64) *kojiJob {
	f := h.Fields()
	importSig, _ := f.Bool("import-signature")
	name, hasName := "", f.Has("koji-instance")
	if hasName {
		name, _ = f.Str("koji-instance")
	}
	needs := hasName || importSig || spec.SubRequests || (spec.Name == "sign-rpm" && h.PayloadLen() == 0)
	if !needs || len(b.cfg.Koji) == 0 {
		return nil
	}
	j := &kojiJob{b: b, user: h.User(), importSig: importSig, maxSize: maxSize, rpms: map[string]*koji.RPMInfo{}}
	switch {
	case hasName:
		if inst, ok := b.cfg.Koji[name]; ok {
			j.inst = &inst
		}
	case len(b.cfg.Koji) == 1:
		for n, inst := range b.cfg.Koji {
			name, j.inst = n, &inst
		}
	default:
		if inst, ok := b.cfg.Koji["default"]; ok {
			name, j.inst = "default", &inst
		}
	}
	j.name = name
	if j.inst == nil {
		if hasName {
			j.instErr = fmt.Errorf("the bridge has no Koji instance %q", name)
		} else {
			j.instErr = errors.New("the request names no koji-instance and the bridge has several, none called default")
		}
	}
	return j
}

// session returns the job's hub client: logged in as the requesting user
// (proxy login with the bridge's certificate) and checked for the sign
// permission when signatures are to be imported, so that a user Koji
// would refuse is refused before anything is signed.
func (j *kojiJob) session(ctx context.Context) (*koji.Client, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.instErr != nil {
		return nil, j.instErr
	}
	if j.ready {
		return j.client, j.loginEr
	}
	j.ready = true
	c, err := koji.New(j.inst.HubURL, koji.Options{TLS: j.inst.TLS, Timeout: j.timeout()})
	if err != nil {
		j.loginEr = err
		return nil, err
	}
	j.client = c
	if j.importSig {
		if err := c.SSLLogin(ctx, j.user); err != nil {
			j.loginEr = err
			return nil, err
		}
		v, err := c.Call(ctx, "hasPerm", "sign")
		if err != nil {
			j.loginEr = err
			return nil, err
		}
		if ok, _ := v.(bool); !ok {
			j.loginEr = fmt.Errorf("koji hasPerm: Koji user %s lacks the sign permission that addRPMSig needs", j.user)
			return nil, j.loginEr
		}
	}
	return c, nil
}

func (j *kojiJob) timeout() time.Duration {
	if j.inst.Timeout > 0 {
		return j.inst.Timeout
	}
	return DefaultKojiTimeout
}

// close ends the hub session.
func (j *kojiJob) close() {
	j.mu.Lock()
	c := j.client
	j.mu.Unlock()
	if c != nil && c.LoggedIn() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Logout(ctx); err != nil {
			j.b.log.Warn("Koji logout failed", "koji_instance", j.name, "user", j.user, "err", err)
		}
	}
}

// fetched is an RPM the bridge downloaded, spooled to a temporary file.
type fetched struct {
	f    *os.File
	size uint64
}

func (f *fetched) Close() {
	if f != nil && f.f != nil {
		f.f.Close()
		os.Remove(f.f.Name())
	}
}

// prepare does the Koji part of one item before it goes to the server:
// it looks the RPM up by the item's rpm-* fields (needed when the payload
// is empty, or when its signature is to be imported), checks Koji's
// record against rpm-epoch and rpm-sigmd5, and with fetch downloads it
// from the topurl and checks its size and MD5. The error says which step
// failed.
func (j *kojiJob) prepare(ctx context.Context, id string, f protocol.Fields, fetch bool) (*fetched, error) {
	if !fetch && !j.importSig {
		return nil, nil
	}
	c, err := j.session(ctx)
	if err != nil {
		return nil, err
	}
	var sel koji.NVRA
	for _, x := range []struct {
		key string
		dst *string
	}{{"rpm-name", &sel.Name}, {"rpm-version", &sel.Version}, {"rpm-release", &sel.Release}, {"rpm-arch", &sel.Arch}} {
		v, err := f.Str(x.key)
		if err != nil || v == "" {
			return nil, fmt.Errorf("%s is missing: the bridge finds the RPM in Koji by rpm-name, rpm-version, rpm-release and rpm-arch", x.key)
		}
		*x.dst = v
	}
	info, err := c.GetRPM(ctx, sel)
	if err != nil {
		return nil, err
	}
	if info.ExternalRepoID != 0 {
		return nil, fmt.Errorf("koji getRPM: %s comes from an external repository, not from this Koji", sel)
	}
	if e, err := f.Str("rpm-epoch"); err == nil {
		got := ""
		if info.Epoch != nil {
			got = fmt.Sprint(*info.Epoch)
		}
		if e != got {
			return nil, fmt.Errorf("koji getRPM: %s has epoch %q in Koji, the request says %q", sel, got, e)
		}
	}
	want, hasMD5 := f.Lookup("rpm-sigmd5")
	if hasMD5 && !strings.EqualFold(info.PayloadHash, hex.EncodeToString(want)) {
		return nil, fmt.Errorf("koji getRPM: %s has payloadhash %s in Koji, the request's rpm-sigmd5 is %x", sel, info.PayloadHash, want)
	}
	j.mu.Lock()
	j.rpms[id] = info
	j.mu.Unlock()
	if !fetch {
		return nil, nil
	}
	if info.Size <= 0 || uint64(info.Size) > j.maxSize {
		return nil, fmt.Errorf("koji getRPM: %s is %d bytes, the limit is %d", sel, info.Size, j.maxSize)
	}
	build, err := c.GetBuild(ctx, info.BuildID)
	if err != nil {
		return nil, err
	}
	return j.download(ctx, koji.RPMURL(j.inst.TopURL, build, info), uint64(info.Size), want)
}

// download fetches u into a temporary file: exactly size bytes, never
// following a redirect to another host, within the job's timeout; with
// sigmd5, the MD5 over header and payload must match it.
func (j *kojiJob) download(ctx context.Context, u string, size uint64, sigmd5 []byte) (_ *fetched, err error) {
	base, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if j.inst.TLS != nil {
		tr.TLSClientConfig = j.inst.TLS.Clone()
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: j.timeout(), CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != base.Host || req.URL.Scheme != base.Scheme {
			return fmt.Errorf("redirect to %s://%s, off the topurl's host", req.URL.Scheme, req.URL.Host)
		}
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return nil
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", u, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: HTTP %s", u, resp.Status)
	}
	if resp.ContentLength >= 0 && uint64(resp.ContentLength) != size {
		return nil, fmt.Errorf("download %s: %d bytes, Koji says %d", u, resp.ContentLength, size)
	}
	f, err := os.CreateTemp("", "signet-bridge-koji-")
	if err != nil {
		return nil, fmt.Errorf("download: spool file: %w", err)
	}
	out := &fetched{f: f, size: size}
	defer func() {
		if err != nil {
			out.Close()
		}
	}()
	n, err := io.Copy(f, io.LimitReader(resp.Body, int64(size)+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", u, err)
	}
	if uint64(n) != size {
		return nil, fmt.Errorf("download %s: %d bytes, Koji says %d", u, n, size)
	}
	if sigmd5 != nil {
		got, err := headerPayloadMD5(f, int64(size))
		if err != nil {
			return nil, fmt.Errorf("download %s: %w", u, err)
		}
		if !bytes.Equal(got, sigmd5) {
			return nil, fmt.Errorf("download %s: MD5 over header and payload is %x, rpm-sigmd5 says %x", u, got, sigmd5)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return out, nil
}

// sigHeaderLen returns the length of the signature header (with its
// padding) that starts at b, given at least its first 16 bytes.
func sigHeaderLen(b []byte) (int64, error) {
	if len(b) < 16 || !bytes.Equal(b[:4], []byte{0x8e, 0xad, 0xe8, 0x01}) {
		return 0, errors.New("no RPM signature header")
	}
	n := int64(binary.BigEndian.Uint32(b[8:12]))
	size := int64(binary.BigEndian.Uint32(b[12:16]))
	l := 16 + 16*n + size
	if n > 1<<16 || l > maxSigHeader {
		return 0, fmt.Errorf("RPM signature header of %d entries and %d bytes is over the bridge's limit", n, size)
	}
	return (l + 7) &^ 7, nil
}

// rpmLeadMagic begins every RPM file.
var rpmLeadMagic = []byte{0xed, 0xab, 0xee, 0xdb}

// headerPayloadMD5 computes the MD5 over an RPM's main header and payload
// (everything after the lead and the signature header), which rpm stores
// as SIGMD5 and Koji as payloadhash.
func headerPayloadMD5(f *os.File, size int64) ([]byte, error) {
	var lead [96 + 16]byte
	if _, err := f.ReadAt(lead[:], 0); err != nil {
		return nil, fmt.Errorf("not an RPM: %w", err)
	}
	if !bytes.Equal(lead[:4], rpmLeadMagic) {
		return nil, errors.New("not an RPM (no lead magic)")
	}
	l, err := sigHeaderLen(lead[96:])
	if err != nil {
		return nil, err
	}
	if 96+l > size {
		return nil, errors.New("RPM ends inside its signature header")
	}
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 96+l, size-96-l)); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// readSigHeader reads, from the start of a signed reply payload (a whole
// RPM, or only its signature header in head mode), the bytes up to the
// end of the signature header. It returns them (what was read, to be
// forwarded) and the signature header within them.
func readSigHeader(r io.Reader, payloadLen uint64) (prefix, sighdr []byte, err error) {
	buf := make([]byte, 0, 4096)
	need := func(n int64) error {
		if uint64(n) > payloadLen {
			return errors.New("the signed result ends inside its signature header")
		}
		if int64(len(buf)) >= n {
			return nil
		}
		more := make([]byte, n-int64(len(buf)))
		if _, err := io.ReadFull(r, more); err != nil {
			return err
		}
		buf = append(buf, more...)
		return nil
	}
	if err := need(4); err != nil {
		return nil, nil, err
	}
	off := int64(0)
	if bytes.Equal(buf[:4], rpmLeadMagic) {
		off = 96
	}
	if err := need(off + 16); err != nil {
		return nil, nil, err
	}
	l, err := sigHeaderLen(buf[off:])
	if err != nil {
		return nil, nil, err
	}
	if err := need(off + l); err != nil {
		return nil, nil, err
	}
	return buf, buf[off : off+l], nil
}

// importSigHeader imports a signature header for the item id into Koji,
// on behalf of the requesting user: unless Koji already lists a signature
// of the same key for the RPM (queryRPMSigs), addRPMSig. Sigul's bridge
// fails when that existing signature is not the same header; signet keeps
// Koji's and reports success, since the package is signed by that key in
// Koji either way (a client that signs a package twice gets two headers
// that differ in their time).
func (j *kojiJob) importSigHeader(ctx context.Context, id string, sighdr []byte) error {
	j.mu.Lock()
	info := j.rpms[id]
	j.mu.Unlock()
	if info == nil {
		return errors.New("import-signature: the item was not looked up in Koji")
	}
	sigkey, err := sigHeaderKey(sighdr)
	if err != nil {
		return fmt.Errorf("import-signature: %w", err)
	}
	c, err := j.session(ctx)
	if err != nil {
		return err
	}
	sigs, err := c.QueryRPMSigs(ctx, info.ID, sigkey)
	if err != nil {
		return err
	}
	if len(sigs) > 0 {
		sum := md5.Sum(sighdr)
		if !strings.EqualFold(sigs[0].SigHash, hex.EncodeToString(sum[:])) {
			j.b.log.Info("Koji already has a signature of this key for the RPM; kept", "koji_instance", j.name, "rpm", info.NVRA(), "sigkey", sigkey)
		}
		return nil
	}
	return c.AddRPMSig(ctx, info.ID, sighdr)
}

// RPM signature header tags that hold an OpenPGP signature packet, in the
// order Koji looks at them (koji.get_sighdr_key): GPG, PGP, DSA, RSA.
var sigPacketTags = []uint32{1005, 1002, 267, 268}

// sigHeaderKey returns the key id of the signature in a signature header
// as Koji names it (lower-case hex of the id's last 4 bytes).
func sigHeaderKey(hdr []byte) (string, error) {
	l, err := sigHeaderLen(hdr)
	if err != nil {
		return "", err
	}
	if int64(len(hdr)) < l {
		return "", errors.New("truncated signature header")
	}
	n := int(binary.BigEndian.Uint32(hdr[8:12]))
	store := hdr[16+16*n:]
	found := map[uint32][]byte{}
	for i := 0; i < n; i++ {
		e := hdr[16+16*i:]
		tag, typ := binary.BigEndian.Uint32(e[0:4]), binary.BigEndian.Uint32(e[4:8])
		off, cnt := binary.BigEndian.Uint32(e[8:12]), binary.BigEndian.Uint32(e[12:16])
		if typ != 7 || uint64(off)+uint64(cnt) > uint64(len(store)) { // BIN
			continue
		}
		found[tag] = store[off : off+cnt]
	}
	for _, tag := range sigPacketTags {
		if pkt, ok := found[tag]; ok {
			return packetKeyID(pkt)
		}
	}
	return "", errors.New("the signature header holds no OpenPGP signature")
}

// packetKeyID reads the issuer key id of an OpenPGP signature packet
// (RFC 4880 §5.2): v3 has it in the fixed part, v4 in an issuer (16) or
// issuer fingerprint (33) subpacket.
func packetKeyID(p []byte) (string, error) {
	body, err := packetBody(p)
	if err != nil {
		return "", err
	}
	id := func(b []byte) string { return hex.EncodeToString(b[len(b)-4:]) }
	switch {
	case len(body) >= 15 && body[0] == 3:
		return id(body[7:15]), nil
	case len(body) >= 6 && body[0] == 4:
		off := 4
		for area := 0; area < 2; area++ {
			if len(body) < off+2 {
				break
			}
			n := int(binary.BigEndian.Uint16(body[off:]))
			off += 2
			if len(body) < off+n {
				break
			}
			for sp := body[off : off+n]; len(sp) > 0; {
				l, hl := subpacketLen(sp)
				if hl == 0 || l == 0 || len(sp) < hl+l {
					break
				}
				data := sp[hl : hl+l]
				switch data[0] & 0x7f {
				case 16:
					if len(data) == 9 {
						return id(data[1:]), nil
					}
				case 33:
					if len(data) >= 9 {
						return id(data[2:]), nil
					}
				}
				sp = sp[hl+l:]
			}
			off += n
		}
	}
	return "", errors.New("no issuer key id in the OpenPGP signature")
}

// packetBody strips an OpenPGP packet header (old or new format).
func packetBody(p []byte) ([]byte, error) {
	if len(p) < 2 || p[0]&0x80 == 0 {
		return nil, errors.New("not an OpenPGP packet")
	}
	if p[0]&0x40 == 0 { // old format
		var n, hl int
		switch p[0] & 3 {
		case 0:
			n, hl = int(p[1]), 2
		case 1:
			if len(p) < 3 {
				return nil, errors.New("short packet")
			}
			n, hl = int(binary.BigEndian.Uint16(p[1:])), 3
		case 2:
			if len(p) < 5 {
				return nil, errors.New("short packet")
			}
			n, hl = int(binary.BigEndian.Uint32(p[1:])), 5
		default:
			return p[1:], nil
		}
		if len(p) < hl+n {
			return nil, errors.New("short packet")
		}
		return p[hl : hl+n], nil
	}
	n, hl := subpacketLen(p[1:])
	if hl == 0 || len(p) < 1+hl+n {
		return nil, errors.New("short packet")
	}
	return p[1+hl : 1+hl+n], nil
}

// subpacketLen decodes a new-format length: the length and the bytes it
// took (0 if malformed).
func subpacketLen(b []byte) (int, int) {
	switch {
	case len(b) >= 1 && b[0] < 192:
		return int(b[0]), 1
	case len(b) >= 2 && b[0] < 255:
		return (int(b[0])-192)<<8 + int(b[1]) + 192, 2
	case len(b) >= 5 && b[0] == 255:
		return int(binary.BigEndian.Uint32(b[1:])), 5
	}
	return 0, 0
}
