package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/signet-project/signet/protocol"
)

// FuzzRequestValidation feeds arbitrary bytes, as the request header
// (R1‖R2‖R3) of a client whose certificate CN is alice or the proxy CN
// robot, to the bridge's reading and checking of requests (§4.2 steps 3
// to 8, the configured payload limits, the CN rule, Koji). Beyond not
// panicking: a read failure is a protocol error or the end of the input,
// a refusal has one of the bridge's results, and a request the bridge
// would pair with a server is in the operation table, carries only its
// whitelisted fields with their types, stays within its payload limits,
// is in its sender's name (or a proxy's), does not need Koji, and is
// forwarded byte for byte as it arrived.
func FuzzRequestValidation(f *testing.F) {
	seed := func(version uint32, payloadLen uint64, kv ...string) []byte {
		b := binary.BigEndian.AppendUint32(nil, version)
		b = append(b, byte(len(kv)/2))
		for _, s := range kv {
			b = append(b, byte(len(s)))
			b = append(b, s...)
		}
		return binary.BigEndian.AppendUint64(b, payloadLen)
	}
	for _, op := range protocol.Ops() {
		kv := []string{"op", op.Name, "user", "alice"}
		for _, fs := range op.Fields {
			if fs.Required {
				v := "x"
				if len(fs.Values) > 0 {
					v = fs.Values[0]
				}
				kv = append(kv, fs.Name, v)
			}
		}
		f.Add(seed(1, 10, kv...), false)
		f.Add(seed(1, op.BridgeMaxPayload+1, kv...), true)
	}
	f.Add(seed(1, 1001, "op", "sign-data", "user", "alice", "key", "k"), false) // above the configured limit
	f.Add(seed(1, 10, "op", "sign-data", "user", "bob", "key", "k"), false)     // another user
	f.Add(seed(1, 10, "op", "sign-data", "user", "bob", "key", "k"), true)      // a proxy for another user
	f.Add(seed(1, 0, "op", "sign-rpm", "user", "alice", "key", "k", "rpm-name", "a", "rpm-version", "1", "rpm-release", "1", "rpm-arch", "noarch"), false)
	f.Add(seed(1, 10, "op", "sign-rpm", "user", "alice", "key", "k", "koji-instance", "x"), false)
	f.Add(seed(1, 10, "op", "sign-rpm", "user", "alice", "key", "k", "import-signature", "\x01"), false)
	f.Add(seed(1, 10, "op", "sign-data", "user", "alice", "user", "alice", "key", "k"), false) // a repeated key
	f.Add(seed(2, 0, "op", "list-users", "user", "alice"), false)
	f.Add(seed(1, 0, "op", "list-users", "us\x00er", "alice"), false)
	f.Add([]byte{0, 0, 0, 1, 255}, false)

	b, err := New(Config{Certificate: getPKI().bridge, CA: getPKI().pool, ServerNames: []string{"server.test"},
		ProxyCNs: []string{"robot"}, OpLimits: map[string]uint64{"sign-data": 1000}})
	if err != nil {
		f.Fatal(err)
	}
	results := []string{ResultDroppedInvalid, ResultDroppedCNMismatch, ResultDroppedKoji}
	f.Fuzz(func(t *testing.T, data []byte, proxy bool) {
		cn := "alice"
		if proxy {
			cn = "robot"
		}
		h, err := protocol.ReadRequestHeader(bytes.NewReader(data))
		if err != nil {
			if !isProtocolErr(err) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("reading the header: an error of no known class: %v", err)
			}
			return
		}
		if !bytes.HasPrefix(data, h.HeaderBytes()) {
			t.Fatal("the header bytes the bridge would forward are not the bytes it read")
		}
		spec, rf := b.checkRequest(h, cn)
		if rf != nil {
			if !slices.Contains(results, rf.result) {
				t.Fatalf("refused with result %q", rf.result)
			}
			if rf.result == ResultDroppedInvalid && rf.err == nil {
				t.Fatal("an invalid request refused without saying why")
			}
			return
		}
		// Accepted: it must satisfy every rule.
		if spec.Name != h.Op() {
			t.Fatalf("spec %q for op %q", spec.Name, h.Op())
		}
		if _, ok := protocol.LookupOp(h.Op()); !ok {
			t.Fatalf("accepted unknown op %q", h.Op())
		}
		if h.PayloadLen() > spec.BridgeMaxPayload || h.Op() == "sign-data" && h.PayloadLen() > 1000 {
			t.Fatalf("accepted %s with a payload of %d bytes", h.Op(), h.PayloadLen())
		}
		if h.User() != cn && !proxy {
			t.Fatalf("accepted a request for %q from %q", h.User(), cn)
		}
		fields := h.Fields()
		for _, fl := range fields {
			if fl.Key == protocol.FieldOp || fl.Key == protocol.FieldUser {
				continue
			}
			fs, ok := spec.Field(fl.Key)
			if !ok {
				t.Fatalf("accepted field %q, which %s does not allow", fl.Key, spec.Name)
			}
			if err := fs.Check(fl.Value); err != nil {
				t.Fatalf("accepted field %q: %v", fl.Key, err)
			}
		}
		if fields.Has("koji-instance") || h.Op() == "sign-rpm" && h.PayloadLen() == 0 {
			t.Fatal("accepted a request that needs Koji")
		}
		if v, err := fields.Bool("import-signature"); err == nil && v {
			t.Fatal("accepted import-signature")
		}
	})
}
