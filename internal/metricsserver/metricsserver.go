// Package metricsserver is the loopback-only HTTP listener that
// signet-bridge and signet-robo serve their Prometheus metrics on. The
// endpoint has no authentication, so it must not be reachable from other
// hosts: every address and listener is checked to be a loopback one.
package metricsserver

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// CheckLoopback refuses a metrics address whose host is not a loopback IP
// address or "localhost". An empty host (":9100") means every interface
// and is refused too.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("metrics address %q is not a loopback address: the metrics endpoint has no authentication; use 127.0.0.1:PORT, [::1]:PORT or localhost:PORT and scrape it locally (or through an authenticating proxy)", addr)
}

// Listen opens the metrics listener after CheckLoopback, and checks the
// address it got as well ("localhost" must resolve to loopback).
func Listen(addr string) (net.Listener, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := CheckListener(ln); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// CheckListener refuses a listener opened elsewhere on a non-loopback
// address.
func CheckListener(ln net.Listener) error {
	ta, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return fmt.Errorf("metrics listener address %s is not a loopback address", ln.Addr())
	}
	return nil
}

// NewServer returns the HTTP server for h at /metrics, with a bound on
// how long a client may take to send its request headers.
func NewServer(h http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}
