package robo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/formats/rpm"
)

// packagesRequest is signet's request to sign packages or images:
//
//	{"key": "fedora-43", "destination": "f43/updates",
//	 "rpms": [{"file": "https://...", "checksum": "sha256:..."}, ...]}
//
// or "images" (EFI binaries, signed with Authenticode by key with its
// certificate cert_name) in place of "rpms". The signed files are written
// to output_dir/destination/<name>.
type packagesRequest struct {
	Key         string         `json:"key"`
	CertName    string         `json:"cert_name"`
	Destination string         `json:"destination"`
	RPMs        []*artifactRef `json:"rpms"`
	Images      []*artifactRef `json:"images"`
}

// artifactResult is one artifact's line in the finished message.
type artifactResult struct {
	File           string `json:"file"`
	Output         string `json:"output,omitempty"`
	Status         string `json:"status"`
	FailureMessage string `json:"failure-message,omitempty"`
}

func (r *Robo) handlePackages(ctx context.Context, m *Message) (any, bool, error) {
	var req packagesRequest
	if _, err := decodeObject(m.Body, &req); err != nil {
		return nil, false, err
	}
	refs := req.RPMs
	if (len(req.RPMs) == 0) == (len(req.Images) == 0) {
		return nil, false, malformed("a request lists either rpms or images")
	}
	if len(req.Images) > 0 {
		refs = req.Images
	}
	if req.Key == "" {
		return nil, false, malformed("no key")
	}
	if req.Destination != "" && !filepath.IsLocal(req.Destination) {
		return nil, false, malformed("destination %q is not a relative path inside the output directory", req.Destination)
	}
	names := map[string]bool{}
	for _, a := range refs {
		if a == nil {
			return nil, false, malformed("an artifact is null")
		}
		if err := a.check(); err != nil {
			return nil, false, err
		}
		if names[a.name()] {
			return nil, false, malformed("two artifacts are named %s", a.name())
		}
		names[a.name()] = true
	}
	kc := &r.cfg.Packages
	fail := func(msg string) (any, bool, error) {
		body := withStatus(m.Body, false, msg)
		return body, false, nil
	}
	if !slices.ContainsFunc(kc.Keys, func(k KeyConfig) bool { return k.Name == req.Key }) {
		return fail(fmt.Sprintf("key %q is not configured for this signer", req.Key))
	}
	certName := req.CertName
	if certName == "" {
		certName = r.certNames[req.Key]
	}
	if len(req.Images) > 0 && certName == "" {
		return fail(fmt.Sprintf("no certificate name for key %q", req.Key))
	}
	dest, derr := outputDir(kc.OutputDir, req.Destination)
	if derr != nil {
		return fail(derr.Error())
	}

	results := make([]artifactResult, len(refs))
	srcs := make([]*source, len(refs))
	defer func() {
		for _, s := range srcs {
			if s != nil {
				s.Close()
			}
		}
	}()
	for i, a := range refs {
		results[i] = artifactResult{File: a.File, Output: filepath.Join(dest, a.name())}
		s, err := r.fetch(ctx, kc, a, true)
		if isFailure(err) {
			results[i].Status, results[i].FailureMessage = "FAILURE", err.Error()
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if len(req.RPMs) > 0 {
			if _, err := rpm.Read(s, s.size); err != nil {
				s.Close()
				results[i].Status, results[i].FailureMessage = "FAILURE", fmt.Sprintf("%s: %v", a.File, err)
				continue
			}
		}
		// Signed outputs take the input's mode.
		s.Chmod(0o644)
		srcs[i] = s
	}
	var err error
	if len(req.RPMs) > 0 {
		err = r.signRPMs(ctx, req.Key, srcs, results)
	} else {
		err = r.signImages(ctx, req.Key, certName, srcs, results)
	}
	if err != nil {
		return nil, false, err
	}
	ok := true
	var failures []string
	for i := range results {
		if results[i].Status == "" {
			results[i].Status = "SUCCESS"
		}
		if results[i].Status != "SUCCESS" {
			ok = false
			failures = append(failures, results[i].FailureMessage)
			r.m.artifacts.WithLabelValues(m.Kind, "failed").Inc()
		} else {
			r.m.artifacts.WithLabelValues(m.Kind, "signed").Inc()
		}
	}
	body := withStatus(m.Body, ok, strings.Join(failures, "; "))
	body["results"] = results
	return body, ok, nil
}

// signRPMs signs the fetched packages as one sign-rpms batch with head
// signing; the client library sends a package without payload digest
// (rpm < 4.14) whole in the same batch and logs that it did, at level
// info, in the robo's log. A refusal for one package is its failure;
// anything else (the connection) is transient for the whole request: the
// packages signed so far are simply signed again.
func (r *Robo) signRPMs(ctx context.Context, key string, srcs []*source, results []artifactResult) error {
	var files []client.RPMFile
	var idx []int
	for i, s := range srcs {
		if s != nil {
			files = append(files, client.RPMFile{Path: s.Name(), Output: results[i].Output})
			idx = append(idx, i)
		}
	}
	if len(files) == 0 {
		return nil
	}
	res, err := r.signer.SignRPMs(ctx, client.SignRPMOptions{Key: key, Passphrase: r.passphrase(key), HeadSigning: true}, files)
	if err != nil {
		if isTransient(err) {
			return fmt.Errorf("sign-rpms: %w", err)
		}
		for _, i := range idx {
			results[i].Status, results[i].FailureMessage = "FAILURE", err.Error()
		}
		return nil
	}
	for j, rr := range res {
		i := idx[j]
		if rr.Err == nil {
			continue
		}
		if isTransient(rr.Err) {
			return fmt.Errorf("sign-rpms: %s: %w", results[i].File, rr.Err)
		}
		results[i].Status, results[i].FailureMessage = "FAILURE", fmt.Sprintf("%s: %v", results[i].File, rr.Err)
	}
	return nil
}

// signImages signs each fetched EFI image with sign-pe.
func (r *Robo) signImages(ctx context.Context, key, certName string, srcs []*source, results []artifactResult) error {
	for i, s := range srcs {
		if s == nil {
			continue
		}
		err := client.WriteFileAtomic(results[i].Output, 0o644, func(w io.Writer) error {
			return r.signer.SignPE(ctx, client.SignPERequest{Key: key, CertName: certName, Passphrase: r.passphrase(key), In: s, Size: s.size}, w)
		})
		if isTransient(err) {
			return fmt.Errorf("sign-pe %s: %w", results[i].File, err)
		}
		if err != nil {
			results[i].Status, results[i].FailureMessage = "FAILURE", fmt.Sprintf("%s: %v", results[i].File, err)
		}
	}
	return nil
}

// handleXML signs an XML document (the body) and answers with its
// armored detached signature.
func (r *Robo) handleXML(ctx context.Context, m *Message) (any, bool, error) {
	if err := checkXML(m.Body); err != nil {
		return nil, false, err
	}
	kc := &r.cfg.XML
	sum := sha256.Sum256(m.Body)
	reply := map[string]any{"request_id": m.ID, "key": kc.Key, "sha256": hex.EncodeToString(sum[:])}
	var sig bytes.Buffer
	err := r.signer.SignData(ctx, client.SignDataRequest{Key: kc.Key, Armor: true, Passphrase: r.passphrase(kc.Key), In: bytes.NewReader(m.Body), Size: int64(len(m.Body))}, &sig)
	if isTransient(err) {
		return nil, false, fmt.Errorf("signing: %w", err)
	}
	if err != nil {
		reply["status"], reply["failure-message"] = "FAILURE", err.Error()
		return reply, false, nil
	}
	reply["status"], reply["signature"] = "SUCCESS", sig.String()
	return reply, true, nil
}

// xmlDeclaration is how a body must begin: robosignatory's XMLSigner
// signs nothing else, so that what is signed is an XML document and
// cannot be taken for another format's signed data.
const xmlDeclaration = `<?xml version="1.0" `

// checkXML is the XML kind's guard: the body begins with the XML
// declaration, byte for byte (no byte-order mark, no space before it),
// and is one well-formed document.
func checkXML(b []byte) error {
	if !bytes.HasPrefix(b, []byte(xmlDeclaration)) {
		return malformed("the body does not begin with %q", xmlDeclaration)
	}
	if err := wellFormedXML(b); err != nil {
		return malformed("the body is not a well-formed XML document: %v", err)
	}
	return nil
}

// wellFormedXML checks that b is one well-formed XML document.
func wellFormedXML(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	elements := 0
	depth := 0
	for {
		t, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch t.(type) {
		case xml.StartElement:
			if depth == 0 {
				elements++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if elements != 1 {
		return fmt.Errorf("%d root elements", elements)
	}
	return nil
}

// outputDir makes base/rel one directory at a time and returns it with
// symbolic links resolved, refusing a destination that a link inside base
// leads out of (nothing is made past such a link): a message names rel,
// and only configuration names where outputs may go.
func outputDir(base, rel string) (string, error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	rbase, err := filepath.EvalSymlinks(base)
	if err != nil {
		return "", err
	}
	dir := rbase
	for _, c := range strings.Split(filepath.Clean(rel), string(filepath.Separator)) {
		if c == "" || c == "." {
			continue
		}
		next := filepath.Join(dir, c)
		if err := os.Mkdir(next, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		r, err := filepath.EvalSymlinks(next)
		if err != nil {
			return "", err
		}
		if rr, err := filepath.Rel(rbase, r); err != nil || !filepath.IsLocal(rr) {
			return "", fmt.Errorf("destination %q leads outside the output directory", rel)
		}
		dir = r
	}
	return dir, nil
}
