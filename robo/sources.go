package robo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Where artifacts may come from, and so where their signatures may go
// beside them, is the configuration's allowed_sources: a list of file,
// http and https URLs, each naming a directory. A URL is allowed when it
// has an entry's scheme, exactly its host and port (no user information),
// and a path that is, segment by segment, the entry's path followed by
// more segments. URLs are parsed, never compared as text: a path segment
// that decodes to "." or "..", holds a slash, a backslash, a NUL or a
// percent sign once decoded, or is empty, is refused, whatever its
// encoding. A local file is opened, and the path the kernel opened (its
// symbolic links resolved) must be inside an entry's directory, itself
// resolved. A redirect is followed only to an allowed URL.

// errNotAllowed marks a URL outside allowed_sources.
var errNotAllowed = errors.New("not an allowed source")

// source is one allowed_sources entry.
type allowedSource struct {
	scheme string
	host   string   // lowercased host:port (default port made explicit); "" for file
	segs   []string // decoded path segments of the directory
	dir    string   // file: the directory, cleaned
}

// defaultPort is the port a scheme implies.
var defaultPort = map[string]string{"http": "80", "https": "443"}

// parseAllowedSource parses and checks one allowed_sources entry.
func parseAllowedSource(s string) (allowedSource, error) {
	u, err := url.Parse(s)
	if err != nil {
		return allowedSource{}, fmt.Errorf("%q does not parse: %v", s, err)
	}
	a, segs, err := split(u)
	if err != nil {
		return allowedSource{}, fmt.Errorf("%q: %v", s, err)
	}
	// A trailing slash names the same directory.
	if n := len(segs); n > 0 && segs[n-1] == "" {
		segs = segs[:n-1]
	}
	if slices.Contains(segs, "") {
		return allowedSource{}, fmt.Errorf("%q: an empty path segment", s)
	}
	a.segs = segs
	if a.scheme == "file" {
		a.dir = "/" + strings.Join(segs, "/")
	}
	return a, nil
}

// split checks what every URL must satisfy, allowed or asked for, and
// returns its scheme and host, and its path's decoded segments (the last
// one "" when the path ends with a slash).
func split(u *url.URL) (allowedSource, []string, error) {
	var a allowedSource
	a.scheme = strings.ToLower(u.Scheme)
	if _, ok := map[string]bool{"file": true, "http": true, "https": true}[a.scheme]; !ok {
		return a, nil, errors.New("not a file, http or https URL")
	}
	if u.Opaque != "" {
		return a, nil, errors.New("not a hierarchical URL")
	}
	if u.User != nil {
		return a, nil, errors.New("a URL with user information (user@host) is not allowed")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return a, nil, errors.New("a URL with a query or a fragment is not allowed")
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	switch a.scheme {
	case "file":
		if host != "" && host != "localhost" || port != "" {
			return a, nil, errors.New("a file URL names no host")
		}
	default:
		if host == "" {
			return a, nil, errors.New("no host")
		}
		if port == "" {
			port = defaultPort[a.scheme]
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return a, nil, fmt.Errorf("port %q", port)
		}
		a.host = net.JoinHostPort(host, port)
	}
	p := u.EscapedPath()
	if p == "" && a.scheme != "file" {
		p = "/" // https://host is https://host/
	}
	if !strings.HasPrefix(p, "/") {
		return a, nil, errors.New("the path is not absolute")
	}
	raw := strings.Split(p[1:], "/")
	segs := make([]string, len(raw))
	for i, r := range raw {
		s, err := url.PathUnescape(r)
		if err != nil {
			return a, nil, fmt.Errorf("path segment %q does not decode", r)
		}
		switch {
		case s == "." || s == "..":
			return a, nil, errors.New("a path with a . or .. segment is not allowed")
		case strings.ContainsAny(s, "/\\%\x00"):
			return a, nil, fmt.Errorf("path segment %q holds a slash, a backslash, a NUL or a percent sign", r)
		case s == "" && i != len(raw)-1:
			return a, nil, errors.New("a path with an empty segment (//) is not allowed")
		}
		segs[i] = s
	}
	return a, segs, nil
}

// sourcePolicy is a kind's allowed_sources, parsed.
type sourcePolicy []allowedSource

func newSourcePolicy(list []string) (sourcePolicy, error) {
	var p sourcePolicy
	for _, s := range list {
		a, err := parseAllowedSource(s)
		if err != nil {
			return nil, err
		}
		p = append(p, a)
	}
	return p, nil
}

// check reports whether u is allowed (errNotAllowed, wrapped with the
// reason, when not). For a file URL it checks the path as written; use
// open for the file itself.
func (p sourcePolicy) check(u *url.URL) error {
	a, segs, err := split(u)
	if err != nil {
		return fmt.Errorf("%w: %v", errNotAllowed, err)
	}
	if n := len(segs); n == 0 || segs[n-1] == "" {
		return fmt.Errorf("%w: the URL names a directory", errNotAllowed)
	}
	for _, e := range p {
		if e.scheme == a.scheme && e.host == a.host && len(segs) > len(e.segs) && slices.Equal(segs[:len(e.segs)], e.segs) {
			return nil
		}
	}
	return fmt.Errorf("%w: outside allowed_sources", errNotAllowed)
}

// inside reports whether the resolved path is inside one of the file
// entries' directories, themselves resolved.
func (p sourcePolicy) inside(resolved string) bool {
	for _, e := range p {
		if e.scheme != "file" {
			continue
		}
		dir, err := filepath.EvalSymlinks(e.dir)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(dir, resolved); err == nil && filepath.IsLocal(rel) {
			return true
		}
	}
	return false
}

// open opens the local file u names, if it is allowed: the path as
// written, and the path the kernel opened, symbolic links resolved. It
// returns the resolved path, which the signature beside the file uses.
// A path that does not exist is a plain os.ErrNotExist.
func (p sourcePolicy) open(u *url.URL) (*os.File, string, error) {
	if err := p.check(u); err != nil {
		return nil, "", err
	}
	resolved, err := filepath.EvalSymlinks(u.Path)
	if err != nil {
		if _, lerr := os.Lstat(u.Path); lerr != nil {
			return nil, "", lerr // the path itself does not exist
		}
		// A link to nowhere: say no more than for a link elsewhere.
		return nil, "", fmt.Errorf("%w: a symbolic link leads outside allowed_sources", errNotAllowed)
	}
	if !p.inside(resolved) {
		return nil, "", fmt.Errorf("%w: a symbolic link leads outside allowed_sources", errNotAllowed)
	}
	// O_NOFOLLOW and O_NONBLOCK: no link swapped in since, and no FIFO
	// to block on.
	f, err := os.OpenFile(resolved, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, "", fmt.Errorf("%w: a symbolic link leads outside allowed_sources", errNotAllowed)
		}
		return nil, "", err
	}
	// A directory above it may have been swapped for a link meanwhile:
	// what counts is the file the kernel opened.
	if opened, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err == nil && !p.inside(opened) {
		f.Close()
		return nil, "", fmt.Errorf("%w: a symbolic link leads outside allowed_sources", errNotAllowed)
	}
	return f, resolved, nil
}

// policyKey carries a request's sourcePolicy to the HTTP client's
// redirect check.
type policyKey struct{}

// withPolicy returns ctx for a GET that may follow redirects allowed by p.
// A request without one follows none.
func withPolicy(ctx context.Context, p sourcePolicy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

// maxRedirects bounds a chain of allowed redirects.
const maxRedirects = 5

// checkRedirect is the HTTP client's CheckRedirect: every hop must be
// allowed by the request's policy; a request without one (a PUT) follows
// no redirect at all.
func checkRedirect(req *http.Request, via []*http.Request) error {
	p, ok := req.Context().Value(policyKey{}).(sourcePolicy)
	if !ok || req.Method != http.MethodGet {
		return fmt.Errorf("%w: a redirect to %s (redirects are not followed here)", errNotAllowed, req.URL.Redacted())
	}
	if len(via) > maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	if err := p.check(req.URL); err != nil {
		return fmt.Errorf("a redirect to %s: %w", req.URL.Redacted(), err)
	}
	return nil
}
