package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/protocol"
)

// TestHostileClients runs the real stack (scripts/devstack.sh: signet-bridge
// and signet-server processes, a SoftHSM2 token) under attack while alice,
// a well-behaved client, signs data through it:
//
//   - a server impersonator: mallory's client certificate on the server
//     port, over and over;
//   - 64 slow-loris connections: TCP connections that never start TLS,
//     connections that send their request header a byte at a time, that
//     trickle a payload, or that go silent after the handshake;
//   - 1000 malformed requests (bad versions, unknown operations, bad and
//     repeated keys, oversize field blocks and payload lengths, chunk
//     floods, random bytes, another user's name).
//
// Every one of alice's requests must succeed; the figures (p50 and p99 of
// her requests, quiet and under attack) are logged, not asserted
// (scripts/hostile.sh prints them). Afterwards the server's spool
// directory is empty and the bridge's counters show each defence at work.
func TestHostileClients(t *testing.T) {
	if testing.Short() {
		t.Skip("hostile-client test: builds and starts the whole stack")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ports := testenv.FreePorts(t, 3)
	clientPort, serverPort, metricsPort := strconv.Itoa(ports[0]), strconv.Itoa(ports[1]), strconv.Itoa(ports[2])
	env := append(os.Environ(), "SIGNET_CLIENT_PORT="+clientPort, "SIGNET_SERVER_PORT="+serverPort, "SIGNET_METRICS_PORT="+metricsPort)
	devstack := func(action string) {
		cmd := exec.Command(filepath.Join(root, "scripts/devstack.sh"), action, dir)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("devstack.sh %s: %v\n%s", action, err, out)
		}
	}
	devstack("up")
	t.Cleanup(func() {
		devstack("down")
		if t.Failed() {
			for _, f := range []string{"bridge.log", "server.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, "log", f))
				t.Logf("%s (last 4 KiB):\n%s", f, b[max(0, len(b)-4096):])
			}
		}
	})
	clientAddr, serverAddr := "127.0.0.1:"+clientPort, "127.0.0.1:"+serverPort
	scrape := func() string {
		resp, err := http.Get("http://127.0.0.1:" + metricsPort + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	// The attackers' certificates, from the devstack's CA: the CA issued
	// them, so only the bridge's own checks stand in their way.
	pool, mallory, eve := attackerCerts(t, filepath.Join(dir, "pki"))
	bridgeTLS := func(cert tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cert}}
	}

	// alice, the well-behaved client.
	cfg, err := client.LoadConfig(filepath.Join(dir, "alice.toml"))
	if err != nil {
		t.Fatal(err)
	}
	alice, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pass, err := os.ReadFile(filepath.Join(dir, "secrets/alice-passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	pass = bytes.TrimSpace(pass)
	data := bytes.Repeat([]byte("signet hostile-client test data\n"), 128) // 4 KiB
	var relayed atomic.Int64
	sign := func() time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var out bytes.Buffer
		start := time.Now()
		// A copy: the client library zeroes the passphrase it is given.
		err := alice.SignData(ctx, client.SignDataRequest{Key: "demo-ed25519", Passphrase: bytes.Clone(pass), In: bytes.NewReader(data), Size: int64(len(data))}, &out)
		d := time.Since(start)
		if err != nil {
			t.Errorf("alice's sign-data failed after %s: %v", d.Round(time.Millisecond), err)
		} else if out.Len() == 0 {
			t.Error("alice's sign-data returned no signature")
		} else {
			relayed.Add(1)
		}
		return d
	}
	for range 3 { // warm up: the passphrase unwrap is cached after the first
		sign()
	}
	var quiet []time.Duration
	for range 50 {
		quiet = append(quiet, sign())
	}

	// The attack.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var impersonations, impersonatorData atomic.Int64
	wg.Add(1)
	go func() { // the server impersonator
		defer wg.Done()
		for ctx.Err() == nil {
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: bridgeTLS(mallory)}
			if c, err := d.DialContext(ctx, "tcp", serverAddr); err == nil {
				impersonations.Add(1)
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				if n, _ := io.Copy(io.Discard, c); n > 0 {
					impersonatorData.Add(n)
				}
				c.Close()
			}
			pause(ctx, 100*time.Millisecond)
		}
	}()
	var slowConns atomic.Int64
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				slowLoris(ctx, i%4, clientAddr, bridgeTLS(mallory))
				slowConns.Add(1)
				// Back again soon; not at once, which would measure
				// little more than this machine's handshake rate.
				pause(ctx, 200*time.Millisecond)
			}
		}()
	}
	var malformedDone, malformedHung atomic.Int64
	for w := range 3 { // three at a time: eve may have four requests open
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1000 && ctx.Err() == nil; i += 3 {
				if !malformed(i, clientAddr, bridgeTLS(eve)) {
					malformedHung.Add(1)
				}
				malformedDone.Add(1)
			}
		}()
	}

	// alice signs throughout: until the malformed requests are all sent
	// and the slow clients have outlived the bridge's grace period (10 s)
	// at least twice; bounded by 2000 requests.
	attackStart := time.Now()
	var attacked []time.Duration
	for len(attacked) < 2000 && (malformedDone.Load() < 1000 || time.Since(attackStart) < 25*time.Second) {
		attacked = append(attacked, sign())
	}
	stop()
	wg.Wait()
	// And after it.
	sign()

	t.Logf("alice's sign-data (4 KiB, demo-ed25519), quiet: n=%d p50=%s p99=%s", len(quiet), pct(quiet, 50), pct(quiet, 99))
	t.Logf("alice's sign-data under attack (%s): n=%d p50=%s p99=%s", time.Since(attackStart).Round(time.Second), len(attacked), pct(attacked, 50), pct(attacked, 99))
	t.Logf("attack: %d impersonator connections, %d slow-loris connections, %d malformed requests",
		impersonations.Load(), slowConns.Load(), malformedDone.Load())

	if impersonatorData.Load() > 0 {
		t.Errorf("the server impersonator received %d bytes", impersonatorData.Load())
	}
	if impersonations.Load() == 0 {
		t.Error("the impersonator never completed a handshake: the test did not test it")
	}
	if n := malformedHung.Load(); n > 0 {
		t.Errorf("%d malformed requests were not dropped within 15 s", n)
	}
	m := scrape()
	if got, want := metricSum(m, `signet_bridge_requests_total{op="sign-data",result="relayed"}`), float64(relayed.Load()); got != want {
		t.Errorf("the bridge relayed %v sign-data requests; alice got %v signatures (an attacker's request got through?)", got, want)
	}
	for _, want := range []string{
		`signet_bridge_server_connections_refused_total{reason="identity"}`,
		`signet_bridge_limits_hit_total{limit="requests_per_cn"}`,
		`signet_bridge_limits_hit_total{limit="min_transfer_rate"}`,
	} {
		if metricSum(m, want) == 0 {
			t.Errorf("%s stayed 0:\n%s", want, grepLines(m, "signet_bridge_"))
		}
	}
	if n := metricSum(m, `result="dropped_invalid"`); n < 500 {
		t.Errorf("only %v requests were dropped as invalid:\n%s", n, grepLines(m, "signet_bridge_requests_total"))
	}
	t.Logf("bridge counters after the attack:\n%s", grepLines(m, "_total{"))

	// Nothing is left in the server's spool directory.
	left, err := os.ReadDir(filepath.Join(dir, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("the spool directory holds %d entries after the attack", len(left))
	}
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// pct returns the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)].Round(100 * time.Microsecond)
}

// metricSum adds the values of every sample line of body that contains
// match.
func metricSum(body, match string) float64 {
	var sum float64
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "#") || !strings.Contains(l, match) {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			v, _ := strconv.ParseFloat(l[i+1:], 64)
			sum += v
		}
	}
	return sum
}

// attackerCerts issues client certificates for mallory and eve from the
// devstack's CA (as Sigul's certutil recipe would: no EKU).
func attackerCerts(t *testing.T, pki string) (*x509.CertPool, tls.Certificate, tls.Certificate) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(pki, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(caPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		t.Fatal("devstack CA files are not PEM")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(cn string, serial int64) tls.Certificate {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	return pool, issue("mallory", time.Now().UnixNano()), issue("eve", time.Now().UnixNano()+1)
}

// Attackers come from other addresses than alice (127.0.0.1), as they
// would from other hosts; the bridge's per-address handshake share then
// protects her.
var (
	stallerAddr   = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	malloryAddr   = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}
	malformedAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 4)}
)

// slowLoris makes one slow connection of the given kind and returns when
// the bridge ends it (or ctx does).
func slowLoris(ctx context.Context, kind int, addr string, cfg *tls.Config) {
	if kind == 0 { // TCP only: never starts TLS
		c, err := (&net.Dialer{LocalAddr: stallerAddr, Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		io.Copy(io.Discard, c)
		return
	}
	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: malloryAddr, Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	dead := make(chan struct{})
	go func() { io.Copy(io.Discard, c); close(dead) }()
	var f protocol.Fields
	f.SetStr("op", "sign-data")
	f.SetStr("user", "mallory")
	f.SetStr("key", "demo-rsa")
	h, _ := protocol.NewRequestHeader(f, 1<<20)
	req := binary.BigEndian.AppendUint64(h.HeaderBytes(), 1<<20)
	var hdr [4]byte
	switch kind {
	case 1: // the request header, a byte every 200 ms (bounded by its length)
		binary.BigEndian.PutUint32(hdr[:], uint32(len(req)))
		c.Write(hdr[:])
		for _, b := range req {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-dead:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	case 2: // a whole header, then 16 bytes of payload every 100 ms
		binary.BigEndian.PutUint32(hdr[:], uint32(len(req)))
		c.Write(append(hdr[:], req...))
		for range (1 << 20) / 16 {
			binary.BigEndian.PutUint32(hdr[:], 16)
			if _, err := c.Write(append(hdr[:], make([]byte, 16)...)); err != nil {
				return
			}
			select {
			case <-dead:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	<-dead // kind 3, and whatever remains: silence until the bridge hangs up
}

// malformed sends the i-th malformed request as eve, closes its sending
// side, and reports whether the bridge ended the connection, without a
// byte of reply, within 15 s.
func malformed(i int, addr string, cfg *tls.Config) bool {
	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: malformedAddr, Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return true // refused outright (a handshake limit): also a drop
	}
	tc := c.(*tls.Conn)
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(15 * time.Second))
	chunk := func(s protocol.Stream, b []byte) []byte {
		h, _ := protocol.MakeChunkHeader(s, len(b))
		return append(binary.BigEndian.AppendUint32(nil, uint32(h)), b...)
	}
	field := func(b []byte, k, v string) []byte {
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b = append(b, byte(len(v)))
		return append(b, v...)
	}
	req := func(version uint32, fields []byte, n uint64) []byte {
		b := binary.BigEndian.AppendUint32(nil, version)
		b = append(b, fields...)
		return binary.BigEndian.AppendUint64(b, n)
	}
	var msg []byte
	switch i % 8 {
	case 0: // random bytes
		msg = make([]byte, 1+mrand.IntN(300))
		rand.Read(msg)
	case 1: // an unknown protocol version
		msg = chunk(protocol.Outer, req(uint32(2+i), field(field([]byte{2}, "op", "list-users"), "user", "eve"), 0))
	case 2: // an unknown operation
		msg = chunk(protocol.Outer, req(1, field(field([]byte{2}, "op", fmt.Sprintf("frobnicate-%d", i)), "user", "eve"), 0))
	case 3: // a repeated key, and a key with a control character
		f := field(field(field([]byte{3}, "op", "sign-data"), "user", "eve"), "user", "alice")
		if i%16 == 3 {
			f = field(field(field([]byte{3}, "op", "sign-data"), "user", "eve"), "ke\x01y", "demo-rsa")
		}
		msg = chunk(protocol.Outer, req(1, f, 0))
	case 4: // an oversize field block: 255 fields of 255-byte keys and values
		f := []byte{255}
		for j := range 255 {
			f = field(f, fmt.Sprintf("%03d%s", j, strings.Repeat("k", 252)), strings.Repeat("v", 255))
		}
		msg = chunk(protocol.Outer, req(1, f, 0))
	case 5: // a payload length beyond the operation's limit
		f := field(field(field([]byte{3}, "op", "import-key"), "user", "eve"), "key", "k")
		msg = chunk(protocol.Outer, req(1, f, 1<<40))
	case 6: // 8 MiB of inner data before any request: more than the bridge buffers
		big := make([]byte, 1<<20)
		for range 8 {
			msg = append(msg, chunk(protocol.Inner, big)...)
		}
	case 7: // someone else's name
		f := field(field(field([]byte{3}, "op", "sign-data"), "user", "alice"), "key", "demo-rsa")
		msg = chunk(protocol.Outer, req(1, f, 10))
	}
	tc.Write(msg)
	tc.CloseWrite()
	n, err := io.Copy(io.Discard, tc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return n == 0
}
