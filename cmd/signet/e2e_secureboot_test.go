package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/testenv"
	secureboottest "github.com/signet-project/signet/secureboot-test"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var sbverifySignature = regexp.MustCompile(`(?m)^signature \d+$`)

var checksumLines = regexp.MustCompile(`(?m)^(Current|Calculated) PE checksum\s*:\s*([0-9A-Fa-f]+)`)

// osslVerify requires osslsigncode to verify img against ca, with no
// checksum complaint.
func osslVerify(t *testing.T, dir, ca, img string) {
	t.Helper()
	out := testenv.Run(t, dir, nil, "osslsigncode", "verify", "-CAfile", ca, "-in", img)
	if !strings.Contains(out, "Succeeded") {
		t.Fatalf("osslsigncode verify %s:\n%s", img, out)
	}
	sums := map[string]string{}
	for _, m := range checksumLines.FindAllStringSubmatch(out, -1) {
		sums[m[1]] = m[2]
	}
	if c, ok := sums["Calculated"]; ok && c != sums["Current"] {
		t.Fatalf("osslsigncode: PE checksum %s, calculated %s", sums["Current"], c)
	}
	if strings.Contains(strings.ToLower(out), "checksum mismatch") {
		t.Fatalf("osslsigncode reports a checksum mismatch:\n%s", out)
	}
}

// testSecureBoot: sign-certificate and sign-pe through client, bridge and
// server on Debian's real unsigned EFI images, checked by sbverify,
// osslsigncode and pesign, and by UEFI firmware with Secure Boot on and
// only the devstack's CA enrolled.
func testSecureBoot(t *testing.T, s *stack) {
	images := artifacts.EFIImages(t)
	ca := s.path("pki/sb-ca.pem")
	type signedImage struct{ arch, name, path string }
	var signed []signedImage
	for _, arch := range []string{"arm64", "amd64"} {
		for _, name := range []string{"shim", "grub", "kernel"} {
			in := filepath.Join(images, arch, name+".efi")
			out := arch + "-" + name + ".signed.efi"
			s.ok(t, s.alice(t, "sign-pe", "-o", out, "demo-sb", "signer", in), "sign-pe "+arch+"/"+name)
			testenv.Run(t, s.dir, nil, "sbverify", "--cert", ca, out)
			osslVerify(t, s.dir, ca, out)
			if p := testenv.Run(t, s.dir, nil, "pesign", "-S", "-i", out); !strings.Contains(p, "signet devstack Secure Boot signer (demo-sb)") {
				t.Fatalf("pesign -S %s:\n%s", out, p)
			}
			signed = append(signed, signedImage{arch, name, s.path(out)})
		}
	}

	// A second, independent chain: demo-sb-ec gets its own self-signed
	// CA certificate. The image signed by both keeps both signatures and
	// verifies against either CA; --replace keeps only the new one.
	s.ok(t, s.alice(t, "sign-certificate", "--certificate-type", "ca", "--subject-certificate", "other",
		"--subject", "CN=another Secure Boot CA", "-o", "other-ca.pem", "demo-sb-ec", "demo-sb-ec"), "sign-certificate (second CA)")
	s.ok(t, s.alice(t, "sign-pe", "-o", "double.efi", "demo-sb-ec", "other", "arm64-grub.signed.efi"), "second signature")
	if l := testenv.Run(t, s.dir, nil, "sbverify", "--list", "double.efi"); len(sbverifySignature.FindAllString(l, -1)) != 2 {
		t.Fatalf("sbverify --list double.efi:\n%s", l)
	}
	if p := testenv.Run(t, s.dir, nil, "pesign", "-S", "-i", "double.efi"); strings.Count(p, "The signer's common name") != 2 {
		t.Fatalf("pesign -S double.efi:\n%s", p)
	}
	testenv.Run(t, s.dir, nil, "sbverify", "--cert", ca, "double.efi")
	testenv.Run(t, s.dir, nil, "sbverify", "--cert", "other-ca.pem", "double.efi")
	s.ok(t, s.alice(t, "sign-pe", "--replace", "-o", "replaced.efi", "demo-sb-ec", "other", "double.efi"), "sign-pe --replace")
	if l := testenv.Run(t, s.dir, nil, "sbverify", "--list", "replaced.efi"); len(sbverifySignature.FindAllString(l, -1)) != 1 {
		t.Fatalf("sbverify --list replaced.efi:\n%s", l)
	}
	testenv.Run(t, s.dir, nil, "sbverify", "--cert", "other-ca.pem", "replaced.efi")

	// Refusals: each names what is wrong, writes nothing, and the server
	// goes on serving.
	kernel, err := os.ReadFile(filepath.Join(images, "arm64/kernel.efi"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(kernel[:1<<20])
	zw.Close()
	grub, _ := os.ReadFile(filepath.Join(images, "arm64/grub.efi"))
	peOff := binary.LittleEndian.Uint32(grub[0x3c:])
	sections := bytes.Clone(grub)
	binary.LittleEndian.PutUint16(sections[peOff+6:], 200) // NumberOfSections
	signedGrub, _ := os.ReadFile(s.path("arm64-grub.signed.efi"))
	bad := map[string]struct {
		data []byte
		want string
	}{
		"Image.gz":         {gz.Bytes(), "gzip"},
		"truncated.efi":    {grub[:len(grub)/2], "truncated"},
		"sections.efi":     {sections, "section"},
		"trailing.efi":     {append(bytes.Clone(signedGrub), make([]byte, 4096)...), "certificate table"},
		"not-an-image.efi": {[]byte("#!/bin/sh\necho not a PE image\n"), "not a PE"},
	}
	for name, c := range bad {
		os.WriteFile(s.path(name), c.data, 0o644)
		s.fails(t, s.alice(t, "sign-pe", "-o", name+".signed", "demo-sb", "signer", name), "sign-pe "+name, c.want)
		s.absent(t, name+".signed")
	}
	s.fails(t, s.alice(t, "sign-pe", "-o", "x.signed", "demo-sb", "nosuchcert", filepath.Join(images, "arm64/grub.efi")), "unknown certificate", "no certificate named nosuchcert")
	s.fails(t, s.alice(t, "sign-pe", "-o", "x.signed", "demo-rsa", "signer", filepath.Join(images, "arm64/grub.efi")), "an OpenPGP key", "UNSUPPORTED_KEYTYPE")
	s.absent(t, "x.signed")
	s.ok(t, s.alice(t, "sign-pe", "-o", "after-refusals.efi", "demo-sb", "signer", filepath.Join(images, "amd64/grub.efi")), "sign-pe after the refusals")
	testenv.Run(t, s.dir, nil, "sbverify", "--cert", ca, "after-refusals.efi")

	// The firmware is the judge: only our CA in db (it is PK and KEK
	// too). Signed GRUB and kernels start; the same GRUB unsigned, or
	// signed only by the second CA's key, is refused.
	caCert := readCert(t, ca)
	banner := map[string]string{"grub": "Welcome to GRUB!", "kernel": "EFI stub: UEFI Secure Boot is enabled."}
	var bootFiles func(arch secureboottest.Arch, files map[string]string, waitFor ...string) secureboottest.Result
	boot := func(arch secureboottest.Arch, img string, waitFor ...string) secureboottest.Result {
		t.Helper()
		return bootFiles(arch, map[string]string{arch.Loader(): img}, waitFor...)
	}
	bootFiles = func(arch secureboottest.Arch, files map[string]string, waitFor ...string) secureboottest.Result {
		t.Helper()
		if err := secureboottest.Available(arch); err != nil {
			testenv.Unavailable(t, "%v", err)
		}
		vars, err := secureboottest.Vars(arch, secureboottest.Keys{PK: caCert, KEK: caCert, DB: []*x509.Certificate{caCert}})
		if err != nil {
			t.Fatal(err)
		}
		// Room to wait for the machine's QEMU slot and for a second
		// attempt; a boot alone takes seconds.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		r, err := secureboottest.BootFiles(ctx, arch, vars, files, waitFor...)
		if err != nil {
			t.Fatalf("booting %s: %v", files[arch.Loader()], err)
		}
		t.Logf("%s %s: %v in %v", arch, filepath.Base(files[arch.Loader()]), r.Verdict, r.Elapsed.Round(time.Millisecond))
		if r.Retried {
			t.Logf("RETRIED: the first attempt had no verdict in %v; its log:\n%s", secureboottest.DefaultTimeout, r.FirstLog)
		}
		return r
	}
	for _, im := range signed {
		want, ok := banner[im.name]
		if !ok {
			continue // shim: below, with its second stage
		}
		arch := secureboottest.Arch(im.arch)
		if r := boot(arch, im.path, want); r.Verdict != secureboottest.Accepted || !r.Saw(want) {
			t.Fatalf("%s: verdict %v, want Accepted and %q\n%s", im.path, r.Verdict, want, r.Log)
		}
	}
	// shim, signed through the service, starts the GRUB signed through
	// the service beside it (shim checks it against db too).
	if r := bootFiles(secureboottest.ARM64, map[string]string{
		secureboottest.ARM64.Loader(): s.path("arm64-shim.signed.efi"),
		"EFI/BOOT/grubaa64.efi":       s.path("arm64-grub.signed.efi"),
	}, "Welcome to GRUB!", "Verification failed"); r.Verdict != secureboottest.Accepted || !r.Saw("Welcome to GRUB!") {
		t.Fatalf("shim and GRUB: verdict %v\n%s", r.Verdict, r.Log)
	}
	// Refused: the same GRUB unsigned; signed (RSA, through the service)
	// by a key whose certificate does not chain to db (demo-sb with a
	// self-signed certificate); and an ECDSA signature even though its
	// certificate chains to db: Debian 12's OVMF and AAVMF verify only
	// RSA Authenticode signatures (sbverify and osslsigncode accept
	// both), which is why Secure Boot keys should be RSA.
	s.ok(t, s.alice(t, "sign-certificate", "--certificate-type", "ca", "--subject-certificate", "rogue",
		"--subject", "CN=a certificate the firmware does not trust", "-o", "rogue.pem", "demo-sb", "demo-sb"), "sign-certificate (rogue)")
	for _, arch := range []string{"arm64", "amd64"} {
		in := filepath.Join(images, arch, "grub.efi")
		s.ok(t, s.alice(t, "sign-pe", "-o", arch+"-grub.rogue.efi", "demo-sb", "rogue", in), "sign-pe with the rogue certificate")
		s.ok(t, s.alice(t, "sign-pe", "-o", arch+"-grub.ecdsa.efi", "demo-sb-ec", "signer", in), "sign-pe with the ECDSA key")
		testenv.Run(t, s.dir, nil, "sbverify", "--cert", ca, arch+"-grub.ecdsa.efi")
		for _, img := range []string{in, s.path(arch + "-grub.rogue.efi"), s.path(arch + "-grub.ecdsa.efi")} {
			if r := boot(secureboottest.Arch(arch), img); r.Verdict != secureboottest.Refused {
				t.Fatalf("%s: verdict %v, want Refused\n%s", img, r.Verdict, r.Log)
			}
		}
	}
}
