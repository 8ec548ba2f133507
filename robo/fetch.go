package robo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/signet-project/signet/client"
)

// failure is a permanent failure of one request or artifact: it is
// answered with status FAILURE, not retried.
type failure struct{ msg string }

func (f *failure) Error() string { return f.msg }

func failf(format string, a ...any) error { return &failure{fmt.Sprintf(format, a...)} }

func isFailure(err error) bool {
	var f *failure
	return errors.As(err, &f)
}

// artifactRef is one artifact of a request: where to fetch it and its
// expected SHA-256.
type artifactRef struct {
	File     string `json:"file"`
	Checksum string `json:"checksum"`

	url      *url.URL
	sha256   string
	resolved string // a local file's path, symbolic links resolved (set by fetch)
}

var checksumRE = regexp.MustCompile(`^sha256:([0-9a-fA-F]{64})$`)

// check validates the reference's shape (a malformed one makes the whole
// message malformed).
func (a *artifactRef) check() error {
	u, err := url.Parse(a.File)
	if err != nil || (u.Scheme != "file" && u.Scheme != "http" && u.Scheme != "https") {
		return malformed("artifact %q is not a file, http or https URL", a.File)
	}
	if u.Scheme == "file" && !path.IsAbs(u.Path) {
		return malformed("artifact %q: a file URL needs an absolute path", a.File)
	}
	if base := path.Base(u.Path); base == "/" || base == "." || base == ".." || u.Path == "" {
		return malformed("artifact %q names no file", a.File)
	}
	m := checksumRE.FindStringSubmatch(a.Checksum)
	if m == nil {
		return malformed("artifact %q: checksum %q is not sha256:<64 hex digits>", a.File, a.Checksum)
	}
	a.url, a.sha256 = u, strings.ToLower(m[1])
	return nil
}

// name is the artifact's file name.
func (a *artifactRef) name() string { return path.Base(a.url.Path) }

// source is an artifact ready to be read: the local file itself, or a
// downloaded copy in the work directory (removed by Close).
type source struct {
	*os.File
	size int64
	temp bool
}

func (s *source) Close() error {
	err := s.File.Close()
	if s.temp {
		os.Remove(s.File.Name())
	}
	return err
}

// rewind seeks back to the start.
func (s *source) rewind() error {
	_, err := s.Seek(0, io.SeekStart)
	return err
}

// fetch opens or downloads the artifact and checks its checksum. A
// checksum that does not match, a source that is not allowed and a file
// that does not exist are failures; network trouble is transient.
//
// With private, a local file is copied to the work directory first, for
// signers that read the file by name (SignRPMs) rather than from the
// handle that was checked.
func (r *Robo) fetch(ctx context.Context, kc *KindConfig, a *artifactRef, private bool) (*source, error) {
	if err := kc.sources.check(a.url); err != nil {
		return nil, failf("%s: %v", a.File, err)
	}
	var s *source
	if a.url.Scheme == "file" {
		f, resolved, err := kc.sources.open(a.url)
		if errors.Is(err, errNotAllowed) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return nil, failf("%s: %v", a.File, err)
		}
		if err != nil {
			return nil, err
		}
		a.resolved = resolved
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, failf("%s: not a regular file", a.File)
		}
		s = &source{File: f, size: fi.Size()}
		if private {
			// A copy no one else can change between the check and
			// the signing.
			t, err := r.tempCopy(f, a.name())
			f.Close()
			if err != nil {
				return nil, err
			}
			s = t
		}
	} else {
		var err error
		if s, err = r.download(withPolicy(ctx, kc.sources), a); err != nil {
			return nil, err
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, s); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: reading: %w", a.File, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.sha256 {
		s.Close()
		// Never the digest computed: it would tell anyone who can
		// publish a request the hash of any file robo can read.
		return nil, failf("%s: checksum mismatch: the file's SHA-256 is not the expected sha256:%s", a.File, a.sha256)
	}
	if err := s.rewind(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// stallTimeout ends a download that has received nothing for this long
// (the transport bounds the dial and the wait for the response header; a
// server that stops sending mid-body would otherwise hold a worker
// forever). The attempt counts as a transient failure.
const stallTimeout = 2 * time.Minute

// progressReader calls progress before each read.
type progressReader struct {
	r        io.Reader
	progress func()
}

func (p progressReader) Read(b []byte) (int, error) {
	p.progress()
	return p.r.Read(b)
}

func (r *Robo) download(ctx context.Context, a *artifactRef) (*source, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stall := time.AfterFunc(stallTimeout, cancel)
	defer stall.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url.String(), nil)
	if err != nil {
		return nil, failf("%s: %v", a.File, err)
	}
	resp, err := r.http.Do(req)
	if errors.Is(err, errNotAllowed) {
		return nil, failf("%s: %v", a.File, errors.Unwrap(err))
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", a.File, err)
	}
	defer resp.Body.Close()
	if err := httpStatus("fetching "+a.File, resp); err != nil {
		return nil, err
	}
	s, err := r.tempCopy(progressReader{resp.Body, func() { stall.Reset(stallTimeout) }}, a.name())
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", a.File, err)
	}
	return s, nil
}

// tempCopy copies in to a new file in the work directory.
func (r *Robo) tempCopy(in io.Reader, name string) (*source, error) {
	f, err := os.CreateTemp(r.cfg.WorkDir, "signet-robo-*-"+name)
	if err != nil {
		return nil, err
	}
	s := &source{File: f, temp: true}
	if s.size, err = io.Copy(f, in); err == nil {
		err = s.rewind()
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// httpStatus turns an unsuccessful response into an error: transient for
// server errors, timeouts and throttling, a failure otherwise.
func httpStatus(what string, resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err := fmt.Errorf("%s: HTTP %s", what, resp.Status)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests {
		return err
	}
	return &failure{err.Error()}
}

// target is where an artifact's signature goes: a path or a URL.
type target struct {
	path, url string
}

func (t target) String() string {
	if t.path != "" {
		return t.path
	}
	return t.url
}

// sigTarget places the signature of a: output_dir/<name>.sig,
// put_base_url/<name>.sig, or beside the artifact.
func sigTarget(kc *KindConfig, a *artifactRef) target {
	switch {
	case kc.OutputDir != "":
		return target{path: filepath.Join(kc.OutputDir, a.name()+".sig")}
	case kc.PutBaseURL != "":
		return target{url: strings.TrimSuffix(kc.PutBaseURL, "/") + "/" + url.PathEscape(a.name()+".sig")}
	case a.url.Scheme == "file":
		// Beside the file fetch checked, not wherever the message's
		// path (through symbolic links) would lead.
		return target{path: a.resolved + ".sig"}
	default:
		return target{url: a.url.String() + ".sig"}
	}
}

// maxSignature bounds a signature read back for the idempotence check.
const maxSignature = 1 << 20

// read returns what the target holds, or nil if it holds nothing.
func (r *Robo) read(ctx context.Context, t target) ([]byte, error) {
	if t.path != "" {
		// Not through a symbolic link: store replaces one, never
		// follows it.
		f, err := os.OpenFile(t.path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxSignature))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err := httpStatus("reading "+t.url, resp); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxSignature))
}

// store writes data to the target: renamed into place (synced first), or
// PUT.
func (r *Robo) store(ctx context.Context, t target, data []byte) error {
	if t.path != "" {
		return client.WriteFileAtomic(t.path, 0o644, func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, t.url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("storing %s: %w", t.url, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return httpStatus("storing "+t.url, resp)
}
