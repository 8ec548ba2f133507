package bridge

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/signet-project/signet/internal/artifacts"
)

// TestSigHeaderKey reads the key id of a real signature header as Koji
// names it: Fedora's zlib package is signed by fdb19c98.
func TestSigHeaderKey(t *testing.T) {
	zlib, err := os.ReadFile(artifacts.FedoraZlib(t))
	if err != nil {
		t.Fatal(err)
	}
	prefix, hdr, err := readSigHeader(bytes.NewReader(zlib), uint64(len(zlib)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(zlib, prefix) || !bytes.HasPrefix(zlib[96:], hdr) {
		t.Fatal("readSigHeader did not return the file's first bytes")
	}
	if k, err := sigHeaderKey(hdr); err != nil || k != "fdb19c98" {
		t.Fatalf("sigHeaderKey = %q, %v; want fdb19c98", k, err)
	}
	// The header alone (head mode's reply) reads the same.
	if _, hdr2, err := readSigHeader(bytes.NewReader(hdr), uint64(len(hdr))); err != nil || !bytes.Equal(hdr, hdr2) {
		t.Fatalf("header alone: %v", err)
	}
	unsigned, err := os.ReadFile(filepath.Join(artifacts.RPMUtilsTestdata(t), "simple-1.0.1-1.i386.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	_, hdr, err = readSigHeader(bytes.NewReader(unsigned), uint64(len(unsigned)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sigHeaderKey(hdr); err == nil {
		t.Fatal("an unsigned header gave a key")
	}
	// Truncated results are refused, not over-read.
	if _, _, err := readSigHeader(bytes.NewReader(zlib[:200]), 200); err == nil {
		t.Fatal("a truncated package gave a signature header")
	}
}
