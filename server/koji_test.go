package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/signet-project/signet/formats/rpm"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server"
)

// TestKojiItems: what the server does with the items of a request that
// goes through Koji at the bridge (§7.6, §7.7, §7.10): a package fetched
// by the bridge is bound to the client's request only by rpm-sigmd5, so
// it must arrive whole with that MD5 over header and payload, head mode
// included; a bridge's Koji failure is answered KOJI_ERROR with its
// message; and the audit names the NEVRA, the Koji instance and the sigkey.
func TestKojiItems(t *testing.T) {
	t.Parallel()
	for _, head := range []bool{false, true} {
		t.Run(fmt.Sprintf("head=%v", head), func(t *testing.T) {
			f := newOps(t)
			fields := fieldsName("key", "fedora", "koji-instance", "fedora-koji", "import-signature", bool1, "return-data", "\x00")
			if head {
				fields["head-signing"] = bool1
			}
			resp, _ := f.do("sign-rpms", "alice", fields, alicePass, nil)
			f.want("sign-rpms", resp, protocol.CodeOK)
			defer resp.Batch.Close()
			k, _ := f.a.Store.GetKey(context.Background(), "fedora")

			good := realRPM(t, "payload-test-0.1-w9.gzdio.x86_64.rpm")
			p, err := rpm.Read(bytes.NewReader(good), int64(len(good)))
			if err != nil {
				t.Fatal(err)
			}
			md5 := string(p.SigMD5())
			// Same stored SIGMD5, different payload: only a check of
			// the MD5 over the bytes catches it.
			tampered := bytes.Clone(good)
			tampered[len(tampered)-100] ^= 0x40
			nevra := fieldsName("rpm-name", "payload-test", "rpm-epoch", "", "rpm-version", "0.1", "rpm-release", "w9.gzdio", "rpm-arch", "x86_64", "rpm-sigmd5", md5)

			var results []*server.BatchResult
			sign := func(payload []byte, fl map[string]string) *server.BatchResult {
				seq := uint32(len(results) + 1)
				it := &server.BatchItem{Seq: seq, ID: binary.BigEndian.AppendUint32(nil, seq), Fields: map[string][]byte{},
					Payload: bytes.NewReader(payload), Size: int64(len(payload)), Authenticated: false}
				for k, v := range fl {
					it.Fields[k] = []byte(v)
				}
				r := resp.Batch.Sign(context.Background(), it)
				results = append(results, r)
				return r
			}
			for _, c := range []struct {
				name    string
				payload []byte
				fields  map[string]string
				status  protocol.ErrorCode
				message string
			}{
				{"bridge's Koji failure", protocol.KojiErrorPayload("koji getRPM: no RPM nosuch-1-1.noarch: not found"), nevra,
					protocol.CodeKojiError, "bridge: koji getRPM: no RPM nosuch-1-1.noarch"},
				{"nothing fetched", nil, nevra, protocol.CodeKojiError, "did not fetch it from Koji"},
				{"payload changed, SIGMD5 tag kept", tampered, nevra, protocol.CodeCorruptRPM, "digest mismatch"},
				{"headers only", good[:p.PayloadOffset+16], nevra, protocol.CodeUnauthenticatedRPM, ""},
				{"rpm-sigmd5 of something else", good, fieldsName("rpm-sigmd5", strings.Repeat("x", 16)), protocol.CodeUnknownError, "does not match"},
			} {
				r := sign(c.payload, c.fields)
				if head && c.name == "headers only" {
					c.message = "cannot vouch"
				}
				if !head && c.name == "headers only" {
					c.status, c.message = protocol.CodeCorruptRPM, ""
				}
				if r.Status != c.status || !strings.Contains(r.Message, c.message) || r.Payload != nil {
					t.Errorf("%s: status %v, message %q; want %v, %q", c.name, r.Status, r.Message, c.status, c.message)
				}
			}
			r := sign(good, nevra)
			if r.Status != protocol.CodeOK {
				t.Fatalf("good package: %v %s", r.Status, r.Message)
			}
			out := make([]byte, r.Size)
			if _, err := r.Payload.Read(out); err != nil {
				t.Fatal(err)
			}
			if head {
				var spliced bytes.Buffer
				if err := rpm.Splice(&spliced, bytes.NewReader(good), p, out); err != nil {
					t.Fatal(err)
				}
				out = spliced.Bytes()
			}
			rpmChecksig(t, k.PGPCertificate, out, "Header V4 EdDSA/SHA256 Signature")
			if err := resp.Batch.Record(context.Background(), results); err != nil {
				t.Fatal(err)
			}
			recs, err := f.a.Store.ListAudit(context.Background(), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			last := recs[len(recs)-1]
			sigkey := "sigkey=" + strings.ToLower(k.Fingerprint[len(k.Fingerprint)-8:])
			for _, want := range []string{"nevra=payload-test-0.1-w9.gzdio.x86_64", "koji-instance=fedora-koji", sigkey} {
				if !strings.Contains(last.Detail, want) || last.Result != "ok" {
					t.Errorf("audit %q (%s) lacks %q", last.Detail, last.Result, want)
				}
			}
			if !strings.Contains(recs[len(recs)-6].Result, "bridge: koji getRPM") {
				t.Errorf("the KOJI_ERROR item's audit result is %q", recs[len(recs)-6].Result)
			}
		})
	}
}
