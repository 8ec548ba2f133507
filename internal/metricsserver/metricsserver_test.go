package metricsserver

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestAddressMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:9100", "example.com:9100", "bogus"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) accepted a non-loopback address", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:9100", "[::1]:9100", "localhost:9100", "127.0.0.2:1"} {
		if err := CheckLoopback(addr); err != nil {
			t.Errorf("CheckLoopback(%q): %v", addr, err)
		}
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skip(err)
	}
	defer ln.Close()
	if err := CheckListener(ln); err == nil {
		t.Error("CheckListener accepted a listener on every interface")
	}
}

func TestServesMetricsOnly(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "signet_up 1\n") }))
	go srv.Serve(ln)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "signet_up 1") {
		t.Fatalf("/metrics: %d %q", code, body)
	}
	if code, _ := get("/"); code != http.StatusNotFound {
		t.Fatalf("/: %d, want 404", code)
	}
}
