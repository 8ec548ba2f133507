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
// the length of its headers.
func fakeRPM(sigData, mainData, payload int) ([]byte, int) {
	b := make([]byte, 96)
	copy(b, []byte{0xed, 0xab, 0xee, 0xdb})
	header := func(il, dl int) {
		b = append(b, 0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0)
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

// TestSignRPMsHeadSigning: with head-signing the server receives exactly
// what the client sent, whole packages (as Sigul's client sends them) and
// headers alone (as signet's client sends them) alike, so that it can
// verify the client's payload MAC over them (PROTOCOL-v1 §7.8). What the
// payload is, is for the server to judge: the bridge does not parse it.
func TestSignRPMsHeadSigning(t *testing.T) {
	h := startBridge(t, nil)
	ts := newTestServer(t, h.serverAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.run(ctx, 2)
	p := getPKI()
	whole, keep := fakeRPM(100, 7000, 300000)
	headers := whole[:keep+16]
	notRPM := []byte("not an rpm at all")
	res, err := doRequest(h.clientAddr, p.alice, headFields(), nil, [][]byte{whole, headers, notRPM})
	if err != nil {
		t.Fatal(err)
	}
	if res.code != protocol.CodeOK || len(res.subs) != 3 {
		t.Fatalf("%v, %d sub-replies", res.code, len(res.subs))
	}
	for i, sent := range [][]byte{whole, headers, notRPM} {
		if !bytes.Equal(res.subs[uint32(i)], transform(sent)) {
			t.Errorf("sub-request %d: the server did not receive what the client sent", i)
		}
	}
	if n := h.count("sign-rpms", ResultDroppedInvalid); n != 0 {
		t.Errorf("%v head-signing requests dropped", n)
	}
}

func headFields() protocol.Fields {
	f := fields("op", "sign-rpms", "user", "alice", "key", "k")
	if err := f.SetBool("head-signing", true); err != nil {
		panic(err)
	}
	return f
}
