package robo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/internal/koji"
)

// KojiHub is what the tag-sign kind asks of a Koji hub, logged in as
// signet-robo (its own certificate): reading the build, its tags, RPMs,
// signatures and tagging history, writing signed copies and moving the
// build. A session serves one message; Close logs it out.
type KojiHub interface {
	// Build returns the build's NVR and state (Koji's BUILD_STATES:
	// 1 is COMPLETE).
	Build(ctx context.Context, buildID int64) (nvr string, state int, err error)
	// BuildTags lists the tags the build is in.
	BuildTags(ctx context.Context, buildID int64) ([]string, error)
	// BuildRPMs lists the build's RPMs.
	BuildRPMs(ctx context.Context, buildID int64) ([]KojiRPM, error)
	// HasSignature reports whether Koji holds a signature of the RPM
	// under sigkey (queryRPMSigs).
	HasSignature(ctx context.Context, rpmID int64, sigkey string) (bool, error)
	// TagHistory is the build's tag_listing history (queryHistory).
	TagHistory(ctx context.Context, buildID int64) ([]tagEvent, error)
	WriteSignedRPM(ctx context.Context, rpmID int64, sigkey string) error
	// MoveBuild starts moveBuild and returns its task.
	MoveBuild(ctx context.Context, from, to string, buildID int64) (taskID int64, err error)
	// TaskState returns the task's state (Koji's TASK_STATES: 2
	// CLOSED, 3 CANCELED, 5 FAILED; others are not finished) and, for a
	// failed task, its result.
	TaskState(ctx context.Context, taskID int64) (state int, result string, err error)
	Close()
}

// KojiRPM is one RPM of a build, as listRPMs gives it: what signet's
// client sends for a package in Koji (its NEVRA, and payloadhash as
// rpm-sigmd5, which the server checks the package the bridge fetched
// against).
type KojiRPM struct {
	ID                           int64
	Name, Version, Release, Arch string
	Epoch                        *int
	PayloadHash                  string
	Size                         int64
}

// NEVRA is how Sigul's client and signet's name an RPM Koji holds.
func (r KojiRPM) NEVRA() string { return r.Name + "-" + r.Version + "-" + r.Release + "." + r.Arch }

// KojiDialer opens a logged-in session with a configured Koji hub.
type KojiDialer func(ctx context.Context, in *KojiInstanceConfig) (KojiHub, error)

// Koji's states.
const (
	kojiBuildComplete = 1
	kojiTaskClosed    = 2
	kojiTaskCanceled  = 3
	kojiTaskFailed    = 5
)

func isKojiFault(err error) bool {
	var f *koji.Fault
	return errors.As(err, &f)
}

// kojiErr turns a hub error into the message's outcome: a fault (the hub
// answered) is a failure, FAILURE is published; a failf error stays one;
// anything else (the hub unreachable) is transient and retried.
func kojiErr(call string, err error) error {
	if isFailure(err) {
		return err
	}
	if isKojiFault(err) {
		return failf("Koji %s: %v", call, err)
	}
	//lint:ignore ST1005 Koji is a proper noun
	return fmt.Errorf("Koji %s: %w", call, err)
}

// movePoll is how often the moveBuild task is looked at.
var movePoll = 2 * time.Second

// handleTag handles a buildsys.tag message: see TagConfig. A tagging no
// rule matches is acknowledged and nothing is published.
func (r *Robo) handleTag(ctx context.Context, m *Message) (any, bool, error) {
	t, err := parseTagMessage(m.Body)
	if err != nil {
		return nil, false, err
	}
	log := r.log.With("message_id", m.ID, "kind", m.Kind, "build", t.nvr(), "build_id", t.BuildID, "tag", t.Tag)
	in := r.tagRules.instance(t.Instance)
	if in == nil {
		log.Info("Koji instance not configured; ignored", "instance", t.Instance)
		return nil, true, nil
	}
	match := r.tagRules.match(in.Name, t.Tag)
	if match == nil {
		log.Debug("tag not signed here; ignored")
		return nil, true, nil
	}
	body, ok, err := r.signBuild(ctx, log, in, match, t)
	if err != nil {
		if isFailure(err) {
			r.m.artifacts.WithLabelValues(KindTag, "failed").Inc()
			log.Warn("build not signed; it stays where it is", "err", err)
			fb := withStatus(m.Body, false, err.Error())
			fb["from_tag"], fb["to_tag"] = match.from, match.to
			return fb, false, nil
		}
		return nil, false, err
	}
	out := withStatus(m.Body, ok, "")
	for k, v := range body {
		out[k] = v
	}
	return out, ok, nil
}

// signBuild does the work for one matched tagging; a failf error is the
// message's FAILURE, any other error transient.
func (r *Robo) signBuild(ctx context.Context, log *slog.Logger, in *KojiInstanceConfig, match *tagMatch, t *tagMessage) (map[string]any, bool, error) {
	rule := match.rule
	hub, err := r.kojiDial(ctx, in)
	if err != nil {
		return nil, false, kojiErr("login", err)
	}
	defer hub.Close()

	nvr, state, err := hub.Build(ctx, t.BuildID)
	if err != nil {
		return nil, false, kojiErr("getBuild", err)
	}
	if nvr != t.nvr() {
		return nil, false, failf("build %d is %s in Koji, not %s as the message says", t.BuildID, nvr, t.nvr())
	}
	if state != kojiBuildComplete {
		return nil, false, failf("build %s is not complete (state %d)", nvr, state)
	}
	if len(match.trusted) > 0 {
		hist, err := hub.TagHistory(ctx, t.BuildID)
		if err != nil {
			return nil, false, kojiErr("queryHistory", err)
		}
		if err := match.checkTagger(hist); err != nil {
			return nil, false, failf("%v", err)
		}
	}
	tags, err := hub.BuildTags(ctx, t.BuildID)
	if err != nil {
		return nil, false, kojiErr("listTags", err)
	}
	rpms, err := hub.BuildRPMs(ctx, t.BuildID)
	if err != nil {
		return nil, false, kojiErr("listRPMs", err)
	}
	var unsigned []KojiRPM
	for _, p := range rpms {
		ok, err := hub.HasSignature(ctx, p.ID, rule.Sigkey)
		if err != nil {
			return nil, false, kojiErr("queryRPMSigs", err)
		}
		if !ok {
			unsigned = append(unsigned, p)
		}
	}
	result := map[string]any{"from_tag": match.from, "to_tag": match.to, "sigkey": rule.Sigkey, "rpms": len(rpms)}
	if !slices.Contains(tags, match.from) {
		// Already handled (a redelivery) or moved by someone else:
		// nothing is changed.
		if slices.Contains(tags, match.to) && len(unsigned) == 0 {
			log.Info("build already signed and in the destination tag; nothing to do", "to", match.to)
			result["signed"] = 0
			r.m.artifacts.WithLabelValues(KindTag, "skipped").Add(float64(len(rpms)))
			return result, true, nil
		}
		return nil, false, failf("build %s is no longer in %s", nvr, match.from)
	}
	if len(unsigned) > 0 {
		if err := r.signKoji(ctx, log, in, rule, unsigned); err != nil {
			return nil, false, err
		}
		// What Koji now holds is what counts.
		for _, p := range unsigned {
			ok, err := hub.HasSignature(ctx, p.ID, rule.Sigkey)
			if err != nil {
				return nil, false, kojiErr("queryRPMSigs", err)
			}
			if !ok {
				return nil, false, failf("%s: signed, but Koji holds no signature under %s", p.NEVRA(), rule.Sigkey)
			}
		}
	}
	r.m.artifacts.WithLabelValues(KindTag, "signed").Add(float64(len(unsigned)))
	r.m.artifacts.WithLabelValues(KindTag, "skipped").Add(float64(len(rpms) - len(unsigned)))
	result["signed"] = len(unsigned)
	log.Info("RPMs signed in Koji", "signed", len(unsigned), "already", len(rpms)-len(unsigned), "sigkey", rule.Sigkey)
	for _, p := range rpms {
		if err := hub.WriteSignedRPM(ctx, p.ID, rule.Sigkey); err != nil {
			return nil, false, kojiErr("writeSignedRPM "+p.NEVRA(), err)
		}
	}
	if match.from == match.to {
		log.Info("from and to are the same tag: not moved")
		return result, true, nil
	}
	task, err := hub.MoveBuild(ctx, match.from, match.to, t.BuildID)
	if err != nil {
		return nil, false, kojiErr("moveBuild", err)
	}
	result["task_id"] = task
	log.Info("moving the build", "from", match.from, "to", match.to, "task", task)
	if err := r.waitTask(ctx, hub, task); err != nil {
		return nil, false, err
	}
	tags, err = hub.BuildTags(ctx, t.BuildID)
	if err != nil {
		return nil, false, kojiErr("listTags", err)
	}
	if !slices.Contains(tags, match.to) || slices.Contains(tags, match.from) {
		return nil, false, failf("move task %d closed, but the build's tags are %s", task, strings.Join(tags, ", "))
	}
	log.Info("build signed and moved", "to", match.to)
	return result, true, nil
}

// waitTask waits, up to move_timeout, for a task to finish.
func (r *Robo) waitTask(ctx context.Context, hub KojiHub, task int64) error {
	deadline := time.Now().Add(r.cfg.Tag.moveTimeout)
	for {
		state, res, err := hub.TaskState(ctx, task)
		if err != nil {
			return kojiErr("getTaskInfo", err)
		}
		switch state {
		case kojiTaskClosed:
			return nil
		case kojiTaskFailed, kojiTaskCanceled:
			return failf("move task %d failed: %s", task, truncate(res, 500))
		}
		if time.Now().After(deadline) {
			return failf("move task %d did not finish within %s (state %d)", task, r.cfg.Tag.moveTimeout, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(movePoll):
		}
	}
}

// signKoji signs the RPMs through signet, by NEVRA, in one sign-rpms
// batch (--store-in-koji --koji-only -k instance): the bridge fetches each
// from Koji, the server checks it against the rpm-sigmd5 sent and signs
// it, and the bridge imports the signature into Koji on behalf of
// signet-robo's signet user. What the client would look up in Koji is
// what listRPMs said. A refusal is the message's failure.
func (r *Robo) signKoji(ctx context.Context, log *slog.Logger, in *KojiInstanceConfig, rule *TagRuleConfig, rpms []KojiRPM) error {
	lookup := buildLookup{}
	files := make([]client.RPMFile, len(rpms))
	for i, p := range rpms {
		lookup[p.NEVRA()] = &client.KojiRPM{Name: p.Name, Epoch: p.Epoch, Version: p.Version, Release: p.Release, Arch: p.Arch,
			PayloadHash: p.PayloadHash, Size: p.Size}
		files[i] = client.RPMFile{NEVRA: p.NEVRA()}
	}
	opts := client.SignRPMOptions{Key: rule.Key, Passphrase: r.passphrase(rule.Key), V3Signature: rule.V3Signature,
		Koji: lookup, KojiInstance: in.ClientInstance, StoreInKoji: true, KojiOnly: true}
	if rule.FileSigningKey != "" {
		opts.FileSigningKey = rule.FileSigningKey
		opts.FileSigningPassphrase = r.passphrase(rule.FileSigningKey)
	}
	res, err := r.signer.SignRPMs(ctx, opts, files)
	if err != nil {
		if isTransient(err) {
			return fmt.Errorf("sign-rpms through Koji: %w", err)
		}
		return failf("sign-rpms through Koji: %v", err)
	}
	var fails []string
	for i, rr := range res {
		if rr.Err == nil {
			continue
		}
		if isTransient(rr.Err) {
			return fmt.Errorf("sign-rpms through Koji: %s: %w", rpms[i].NEVRA(), rr.Err)
		}
		fails = append(fails, fmt.Sprintf("%s: %v", rpms[i].NEVRA(), rr.Err))
	}
	if len(fails) > 0 {
		return failf("sign-rpms through Koji: %s", strings.Join(fails, "; "))
	}
	log.Debug("sign-rpms through Koji done", "rpms", len(rpms))
	return nil
}

// buildLookup answers the client's Koji look-ups from listRPMs.
type buildLookup map[string]*client.KojiRPM

func (l buildLookup) GetRPM(_ context.Context, nvra string) (*client.KojiRPM, error) {
	return l[nvra], nil
}
