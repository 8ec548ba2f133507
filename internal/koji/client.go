// Package koji speaks Koji's XML-RPC API over HTTPS: what signet's bridge,
// client and signet-robo need of a Koji hub.
//
// API:
//
//	c, err := koji.New(hubURL, koji.Options{TLS: tlsConf, Timeout: ..., MaxResponseSize: ...})
//	v, err := c.Call(ctx, "getRPM", "zlib-1.2.8-10.fc24.i686", koji.Kwargs{"strict": true})
//	err = c.SSLLogin(ctx, "alice")  // certificate login, optionally as a proxy for a user
//	defer c.Logout(ctx)
//	rpm, err := c.GetRPM(ctx, "zlib-1.2.8-10.fc24.i686")  // or an int64 id, or koji.NVRA{...}
//	build, err := c.GetBuild(ctx, rpm.BuildID)           // or "name-version-release"
//	rpms, err := c.ListRPMs(ctx, build.ID)
//	sigs, err := c.QueryRPMSigs(ctx, rpm.ID, "fd431d51") // "" for every key
//	err = c.AddRPMSig(ctx, rpm.ID, sighdr)                // raw header bytes, sent as base64
//	err = c.WriteSignedRPM(ctx, rpm.ID, "fd431d51")
//	task, err := c.MoveBuild(ctx, "from", "to", build.ID) // and TagBuild, GetTaskInfo, WaitTask
//	url := koji.RPMURL(topurl, build, rpm)                 // Koji's pathinfo layout
//
// Errors: a fault from the hub is a *Fault carrying the method, the code and
// the string; every other error also names the method ("koji getRPM: ...").
// A lookup that finds nothing gives an error wrapping ErrNotFound.
//
// The XML-RPC codec is written here: the Go XML-RPC libraries the module
// proxy serves either do not decode Koji's <nil/> and send nil as an empty
// string (which the hub reads as "", not None), or take no context and no
// response size limit.
//
// A Client is safe for concurrent use. Once logged in, calls are serialised,
// since the hub requires each session's call numbers to increase.
package koji

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is wrapped by the errors of lookups that find nothing.
var ErrNotFound = errors.New("not found")

// Defaults for Options.
const (
	DefaultTimeout         = 2 * time.Minute
	DefaultMaxResponseSize = 64 << 20
)

// Options configures a Client.
type Options struct {
	// HTTPClient, if set, is used as it is (its Transport, Timeout and
	// CheckRedirect). Otherwise a client is made from TLS and Timeout that
	// follows no redirects.
	HTTPClient *http.Client
	// TLS is the TLS configuration for an https hub: RootCAs for the hub's
	// CA, Certificates for certificate login. Nil means the system's roots
	// and no client certificate.
	TLS *tls.Config
	// Timeout bounds each call, including reading the response (default
	// DefaultTimeout).
	Timeout time.Duration
	// MaxResponseSize bounds the size of a response body in bytes (default
	// DefaultMaxResponseSize).
	MaxResponseSize int64
}

// Client talks to one Koji hub.
type Client struct {
	url     string
	hc      *http.Client
	timeout time.Duration
	max     int64

	mu      sync.Mutex // held across each call of a logged-in session
	session *session
}

type session struct {
	id, key string
	callnum int64
}

// New returns a client of the hub at hubURL (for instance
// https://koji.example.org/kojihub).
func New(hubURL string, opts Options) (*Client, error) {
	u, err := url.Parse(hubURL)
	if err != nil {
		return nil, fmt.Errorf("koji: hub URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("koji: hub URL %q is not an http(s) URL", hubURL)
	}
	c := &Client{url: strings.TrimRight(hubURL, "/"), hc: opts.HTTPClient, timeout: opts.Timeout, max: opts.MaxResponseSize}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.max <= 0 {
		c.max = DefaultMaxResponseSize
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		if opts.TLS != nil {
			tr.TLSClientConfig = opts.TLS.Clone()
		}
		tr.ResponseHeaderTimeout = c.timeout
		c.hc = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c, nil
}

// URL returns the hub URL the client was made with.
func (c *Client) URL() string { return c.url }

// TLSConfig builds a TLS configuration from PEM files: caFile holds the
// CA certificates that may sign the hub's certificate (empty: the system's
// roots); certFile, if not empty, the client certificate, and keyFile its
// key (empty: certFile holds both, as Koji's own configuration does).
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("koji: CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("koji: CA %s holds no PEM certificate", caFile)
		}
		conf.RootCAs = pool
	}
	if certFile != "" {
		if keyFile == "" {
			keyFile = certFile
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("koji: client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// Call calls method with args (see Kwargs for keyword arguments) and
// returns the decoded result: nil, bool, int64, float64, string, []byte,
// time.Time, []any or map[string]any.
func (c *Client) Call(ctx context.Context, method string, args ...any) (any, error) {
	c.mu.Lock()
	s := c.session
	if s == nil {
		c.mu.Unlock()
		return c.do(ctx, c.url, method, nil, args)
	}
	defer c.mu.Unlock()
	s.callnum++
	return c.do(ctx, c.url, method, s, args)
}

func (c *Client) do(ctx context.Context, endpoint, method string, s *session, args []any) (any, error) {
	body, err := encodeCall(method, args)
	if err != nil {
		return nil, fmt.Errorf("koji %s: %w", method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("koji %s: %w", method, err)
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "signet-koji/1")
	if s != nil {
		req.Header.Set("Koji-Session-Id", s.id)
		req.Header.Set("Koji-Session-Key", s.key)
		req.Header.Set("Koji-Session-Callnum", strconv.FormatInt(s.callnum, 10))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("koji %s: %w", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("koji %s: hub answered HTTP %s", method, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.max+1))
	if err != nil {
		return nil, fmt.Errorf("koji %s: reading the response: %w", method, err)
	}
	if int64(len(data)) > c.max {
		return nil, fmt.Errorf("koji %s: response larger than %d bytes", method, c.max)
	}
	v, err := decodeResponse(data)
	if err != nil {
		var f *Fault
		if errors.As(err, &f) {
			f.Method = method
			return nil, f
		}
		return nil, fmt.Errorf("koji %s: %w", method, err)
	}
	return v, nil
}

// SSLLogin logs in with the client certificate of the TLS configuration.
// With proxyUser not empty the session belongs to that user, which the hub
// allows only to certificates listed in its ProxyDNs (Sigul's bridge logs
// in this way on behalf of the requesting user). Later calls are made in
// the session.
func (c *Client) SSLLogin(ctx context.Context, proxyUser string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session != nil {
		return errors.New("koji sslLogin: already logged in")
	}
	var pu any
	if proxyUser != "" {
		pu = proxyUser
	}
	v, err := c.do(ctx, c.url+"/ssllogin", "sslLogin", nil, []any{Kwargs{"proxyuser": pu}})
	if err != nil {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("koji sslLogin: unexpected result %T", v)
	}
	id, err1 := asString(m["session-id"])
	key, err2 := asString(m["session-key"])
	if err1 != nil || err2 != nil || id == "" || key == "" {
		return errors.New("koji sslLogin: no session in the result")
	}
	if ha, _ := m["header-auth"].(bool); !ha {
		return errors.New("koji sslLogin: the hub does not take session headers (Koji older than 1.30)")
	}
	c.session = &session{id: id, key: key, callnum: -1}
	return nil
}

// LoggedIn reports whether the client holds a session.
func (c *Client) LoggedIn() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session != nil
}

// Logout ends the session, if there is one.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.session
	if s == nil {
		return nil
	}
	c.session = nil
	s.callnum++
	_, err := c.do(ctx, c.url, "logout", s, nil)
	return err
}

// asString accepts a string or an integer (session ids are integers).
func asString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	}
	return "", fmt.Errorf("%T is not a string", v)
}
