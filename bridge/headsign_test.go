package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"testing"

	"github.com/signet-project/signet/protocol"
)

// fakeRPM returns the bytes of an RPM-shaped file: a lead, a signature
// header of sigData bytes (padded to 8), a main header, and a payload; and
// the length of the part head signing keeps.
func fakeRPM(sigData, mainData, payload int) ([]byte, int) {
	b := make([]byte, 96)
	copy(b, rpmLeadMagic)
	header := func(il, dl int) {
		b = append(b, rpmHeaderMagic...)
		b = binary.BigEndian.AppendUint32(b, uint32(il))
		b = binary.BigEndian.AppendUint32(b, uint32(dl))
		b = append(b, bytes.Repeat([]byte{0x11}, 16*il+dl)...)
	}
	header(2, sigData)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	header(3, mainData)
	keep := len(b)
	p := make([]byte, payload)
	rand.Read(p)
	return append(b, p...), keep
}

func TestRPMHeadPrefix(t *testing.T) {
	rpm, keep := fakeRPM(13, 5000, 20000)
	got, err := rpmHeadPrefix(bytes.NewReader(rpm), uint64(len(rpm)))
	if err != nil || !bytes.Equal(got, rpm[:keep]) {
		t.Fatalf("prefix of %d bytes, %v; want %d bytes", len(got), err, keep)
	}
	// A package that is only its headers is kept whole.
	if got, err := rpmHeadPrefix(bytes.NewReader(rpm[:keep]), uint64(keep)); err != nil || len(got) != keep {
		t.Fatalf("headers only: %d bytes, %v", len(got), err)
	}
	bad := map[string][]byte{
		"truncated main header": rpm[:keep-1],
		"not an RPM":            bytes.Repeat([]byte{0x1f, 0x8b}, 200),
		"short":                 rpm[:50],
	}
	huge := bytes.Clone(rpm)
	binary.BigEndian.PutUint32(huge[96+8:], 1<<28) // il of the signature header
	bad["headers past 100 MiB"] = huge
	for name, b := range bad {
		if _, err := rpmHeadPrefix(bytes.NewReader(b), uint64(len(b))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestSignRPMsHeadSigning: with head-signing the server receives only the
// headers of each package, whatever the client sent, and a payload that is
// not an RPM drops the connection.
func TestSignRPMsHeadSigning(t *testing.T) {
	h := startBridge(t, nil)
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 2)
	p := getPKI()
	one, keep1 := fakeRPM(100, 7000, 300000)
	two, keep2 := fakeRPM(8, 64, 0)
	res, err := doRequest(h.clientAddr, p.alice, headFields(), nil, [][]byte{one, two})
	if err != nil {
		t.Fatal(err)
	}
	if res.code != protocol.CodeOK || len(res.subs) != 2 {
		t.Fatalf("%v, %d sub-replies", res.code, len(res.subs))
	}
	if !bytes.Equal(res.subs[0], transform(one[:keep1])) || !bytes.Equal(res.subs[1], transform(two[:keep2])) {
		t.Error("the server did not receive exactly the headers")
	}
	res, err = doRequest(h.clientAddr, p.alice, headFields(), nil, [][]byte{[]byte("not an rpm at all")})
	if err == nil && len(res.subs) == 1 {
		t.Fatal("a non-RPM went through head signing")
	}
	eventually(t, "the drop to be counted", func() bool { return h.count("sign-rpms", ResultDroppedInvalid) == 1 })
}

func headFields() protocol.Fields {
	f := fields("op", "sign-rpms", "user", "alice", "key", "k")
	if err := f.SetBool("head-signing", true); err != nil {
		panic(err)
	}
	return f
}
