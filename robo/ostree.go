package robo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/signet-project/signet/client"
)

// maxCommitObject bounds an OSTree commit object (they are a few hundred
// bytes to a few kilobytes).
const maxCommitObject = 1 << 20

// handleOSTree handles pungi's compose.ostree message, as robosignatory's
// AtomicSigner does: for a configured ref, the commit object in that
// ref's repository (the configuration's, never a path from the message)
// is signed, its .commitmeta written beside it, and, if configured, the
// ref pointed at the commit. A commit that already has a .commitmeta is
// not signed again. A ref not configured, or no commit, is acknowledged
// and nothing is published.
func (r *Robo) handleOSTree(ctx context.Context, m *Message) (any, bool, error) {
	o, err := parseOSTreeMessage(m.Body)
	if err != nil {
		return nil, false, err
	}
	log := r.log.With("message_id", m.ID, "kind", m.Kind, "ref", o.Ref)
	if o.CommitID == nil {
		log.Info("no commit in the message; nothing to sign")
		return nil, true, nil
	}
	var rc *OSTreeRefConfig
	for i := range r.cfg.OSTree.Refs {
		if r.cfg.OSTree.Refs[i].Ref == o.Ref {
			rc = &r.cfg.OSTree.Refs[i]
		}
	}
	if rc == nil {
		log.Info("ref not configured; ignored")
		return nil, true, nil
	}
	commit := *o.CommitID
	log = log.With("commit", commit)
	fail := func(err error) (any, bool, error) {
		r.m.artifacts.WithLabelValues(KindOSTree, "failed").Inc()
		log.Warn("commit not signed", "err", err)
		return withStatus(m.Body, false, err.Error()), false, nil
	}
	objDir, err := existingDir(filepath.Join(rc.Repo, "objects"), commit[:2])
	if errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("commit %s is not in the repository %s", commit, rc.Repo))
	}
	if err != nil {
		return fail(fmt.Errorf("the repository's objects/%s: %v", commit[:2], err))
	}
	commitPath := filepath.Join(objDir, commit[2:]+".commit")
	metaPath := commitPath + "meta"
	signed := false
	if _, err := os.Lstat(metaPath); err == nil {
		log.Info("the commit already has a .commitmeta; not signed again")
		r.m.artifacts.WithLabelValues(KindOSTree, "skipped").Inc()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	} else {
		if err := r.signCommit(ctx, rc, commit, commitPath, metaPath); err != nil {
			if isFailure(err) {
				return fail(err)
			}
			return nil, false, err
		}
		signed = true
		r.m.artifacts.WithLabelValues(KindOSTree, "signed").Inc()
		log.Info("commit signed", "commitmeta", metaPath)
	}
	body := withStatus(m.Body, true, "")
	body["signed"] = signed
	if rc.UpdateRef {
		if err := updateRef(rc.Repo, rc.Ref, commit); err != nil {
			return fail(fmt.Errorf("updating ref %s: %v", rc.Ref, err))
		}
		body["ref_updated"] = true
		log.Info("ref updated")
	}
	return body, true, nil
}

// signCommit signs the commit object and writes the .commitmeta
// atomically, readable by all (it is published with the repository).
func (r *Robo) signCommit(ctx context.Context, rc *OSTreeRefConfig, commit, commitPath, metaPath string) error {
	f, err := os.OpenFile(commitPath, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return failf("commit %s is not in the repository %s", commit, rc.Repo)
	}
	if err != nil {
		return failf("opening the commit object: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxCommitObject {
		return failf("the commit object is not a regular file of at most %d bytes", maxCommitObject)
	}
	err = client.WriteFileAtomic(metaPath, 0o644, func(w io.Writer) error {
		return r.signer.SignOSTree(ctx, client.SignOSTreeRequest{Key: rc.Key, Hash: commit, Passphrase: r.passphrase(rc.Key),
			In: io.LimitReader(f, fi.Size()), Size: fi.Size()}, w)
	})
	if isTransient(err) {
		return fmt.Errorf("sign-ostree: %w", err)
	}
	if err != nil {
		return failf("sign-ostree: %v", err)
	}
	return nil
}

// updateRef points repo/refs/heads/<ref> at commit, atomically, making
// the ref's directories inside the repository only.
func updateRef(repo, ref, commit string) error {
	dir, err := outputDir(filepath.Join(repo, "refs", "heads"), filepath.Dir(ref))
	if err != nil {
		return err
	}
	return client.WriteFileAtomic(filepath.Join(dir, filepath.Base(ref)), 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, commit+"\n")
		return err
	})
}

// existingDir returns base/sub with symbolic links resolved, if it exists
// and stays inside base (resolved).
func existingDir(base, sub string) (string, error) {
	rbase, err := filepath.EvalSymlinks(base)
	if err != nil {
		return "", err
	}
	d, err := filepath.EvalSymlinks(filepath.Join(rbase, sub))
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(rbase, d); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s leads outside %s", sub, base)
	}
	return d, nil
}
