package koji

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// NVRA selects an RPM by name, version, release and arch (getRPM's map
// form; Koji ignores the epoch there, compare RPMInfo.Epoch yourself).
type NVRA struct {
	Name, Version, Release, Arch string
}

func (n NVRA) String() string {
	return n.Name + "-" + n.Version + "-" + n.Release + "." + n.Arch
}

// RPMInfo is what getRPM and listRPMs say of an RPM.
type RPMInfo struct {
	ID      int64
	BuildID int64
	Name    string
	Epoch   *int // nil: no epoch
	Version string
	Release string
	Arch    string
	// PayloadHash is the hex MD5 of the RPM's header and payload, the
	// SIGMD5 tag (Koji's misnomer).
	PayloadHash string
	Size        int64
	// ExternalRepoID is 0 for RPMs built in this Koji.
	ExternalRepoID int64
}

// NVRA returns the RPM's name-version-release.arch.
func (r *RPMInfo) NVRA() string {
	return r.Name + "-" + r.Version + "-" + r.Release + "." + r.Arch
}

// BuildInfo is what getBuild says of a build.
type BuildInfo struct {
	ID          int64
	PackageName string // the name in Koji's paths
	Name        string
	Epoch       *int
	Version     string
	Release     string
	NVR         string
	State       int
	VolumeName  string
	OwnerName   string
	TaskID      int64
}

// RPMSig is one row of queryRPMSigs.
type RPMSig struct {
	RPMID   int64
	SigKey  string // lower-case hex key id, "" for an unsigned header
	SigHash string
}

// TaskInfo is what getTaskInfo says of a task.
type TaskInfo struct {
	ID     int64
	Method string
	State  int
	Owner  int64
}

// Task states (koji.TASK_STATES).
const (
	TaskFree     = 0
	TaskOpen     = 1
	TaskClosed   = 2
	TaskCanceled = 3
	TaskAssigned = 4
	TaskFailed   = 5
)

// selector converts the accepted forms of an RPM or build reference.
func selector(v any) (any, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case string:
		return x, nil
	case NVRA:
		return map[string]any{"name": x.Name, "version": x.Version, "release": x.Release, "arch": x.Arch}, nil
	case *NVRA:
		return selector(*x)
	}
	return nil, fmt.Errorf("cannot select by %T", v)
}

// GetRPM looks an RPM up by id (int or int64), N-V-R.A string, or NVRA.
// An RPM the hub does not know gives an error wrapping ErrNotFound.
func (c *Client) GetRPM(ctx context.Context, rpm any) (*RPMInfo, error) {
	sel, err := selector(rpm)
	if err != nil {
		return nil, fmt.Errorf("koji getRPM: %w", err)
	}
	v, err := c.Call(ctx, "getRPM", sel)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("koji getRPM: no RPM %v: %w", rpm, ErrNotFound)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("koji getRPM: unexpected result %T", v)
	}
	r, err := rpmInfo(m)
	if err != nil {
		return nil, fmt.Errorf("koji getRPM: %w", err)
	}
	return r, nil
}

// GetBuild looks a build up by id or N-V-R string.
func (c *Client) GetBuild(ctx context.Context, build any) (*BuildInfo, error) {
	sel, err := selector(build)
	if err != nil {
		return nil, fmt.Errorf("koji getBuild: %w", err)
	}
	v, err := c.Call(ctx, "getBuild", sel)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("koji getBuild: no build %v: %w", build, ErrNotFound)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("koji getBuild: unexpected result %T", v)
	}
	d := decoder{m: m}
	b := &BuildInfo{
		ID:          d.int("id"),
		PackageName: d.str("package_name"),
		Name:        d.str("name"),
		Epoch:       d.optInt("epoch"),
		Version:     d.str("version"),
		Release:     d.str("release"),
		NVR:         d.str("nvr"),
		State:       int(d.int("state")),
		VolumeName:  d.optStr("volume_name"),
		OwnerName:   d.optStr("owner_name"),
		TaskID:      d.optInt64("task_id"),
	}
	if b.PackageName == "" {
		b.PackageName = b.Name
	}
	if d.err != nil {
		return nil, fmt.Errorf("koji getBuild: %w", d.err)
	}
	return b, nil
}

// ListRPMs lists the RPMs of a build.
func (c *Client) ListRPMs(ctx context.Context, buildID int64) ([]RPMInfo, error) {
	v, err := c.Call(ctx, "listRPMs", Kwargs{"buildID": buildID})
	if err != nil {
		return nil, err
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("koji listRPMs: unexpected result %T", v)
	}
	out := make([]RPMInfo, 0, len(a))
	for _, e := range a {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("koji listRPMs: unexpected entry %T", e)
		}
		r, err := rpmInfo(m)
		if err != nil {
			return nil, fmt.Errorf("koji listRPMs: %w", err)
		}
		out = append(out, *r)
	}
	return out, nil
}

// QueryRPMSigs lists an RPM's signatures, those of sigkey only unless it
// is empty. Koji keeps sigkeys in lower case; sigkey is lowered.
func (c *Client) QueryRPMSigs(ctx context.Context, rpmID int64, sigkey string) ([]RPMSig, error) {
	kw := Kwargs{"rpm_id": rpmID}
	if sigkey != "" {
		kw["sigkey"] = strings.ToLower(sigkey)
	}
	v, err := c.Call(ctx, "queryRPMSigs", kw)
	if err != nil {
		return nil, err
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("koji queryRPMSigs: unexpected result %T", v)
	}
	out := make([]RPMSig, 0, len(a))
	for _, e := range a {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("koji queryRPMSigs: unexpected entry %T", e)
		}
		d := decoder{m: m}
		s := RPMSig{RPMID: d.int("rpm_id"), SigKey: d.str("sigkey"), SigHash: d.str("sighash")}
		if d.err != nil {
			return nil, fmt.Errorf("koji queryRPMSigs: %w", d.err)
		}
		out = append(out, s)
	}
	return out, nil
}

// AddRPMSig stores a signature header (the raw bytes of the RPM's
// signature header, from its magic to its padding) for an RPM. It needs
// the sign permission.
func (c *Client) AddRPMSig(ctx context.Context, rpmID int64, sighdr []byte) error {
	// The hub base64-decodes a string argument.
	_, err := c.Call(ctx, "addRPMSig", rpmID, encodeBase64(sighdr))
	return err
}

// WriteSignedRPM makes the hub write the RPM's copy signed with sigkey
// (under data/signed/ of its build). It needs the sign permission.
func (c *Client) WriteSignedRPM(ctx context.Context, rpmID int64, sigkey string) error {
	_, err := c.Call(ctx, "writeSignedRPM", rpmID, strings.ToLower(sigkey))
	return err
}

// TagBuild asks the hub to tag a build (id or N-V-R); it returns the task.
func (c *Client) TagBuild(ctx context.Context, tag string, build any) (int64, error) {
	sel, err := selector(build)
	if err != nil {
		return 0, fmt.Errorf("koji tagBuild: %w", err)
	}
	return c.taskCall(ctx, "tagBuild", tag, sel)
}

// MoveBuild asks the hub to move a build from one tag to another; it
// returns the task.
func (c *Client) MoveBuild(ctx context.Context, fromTag, toTag string, build any) (int64, error) {
	sel, err := selector(build)
	if err != nil {
		return 0, fmt.Errorf("koji moveBuild: %w", err)
	}
	return c.taskCall(ctx, "moveBuild", fromTag, toTag, sel)
}

func (c *Client) taskCall(ctx context.Context, method string, args ...any) (int64, error) {
	v, err := c.Call(ctx, method, args...)
	if err != nil {
		return 0, err
	}
	id, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("koji %s: unexpected result %T", method, v)
	}
	return id, nil
}

// GetTaskInfo returns a task's state.
func (c *Client) GetTaskInfo(ctx context.Context, taskID int64) (*TaskInfo, error) {
	v, err := c.Call(ctx, "getTaskInfo", taskID)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("koji getTaskInfo: no task %d: %w", taskID, ErrNotFound)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("koji getTaskInfo: unexpected result %T", v)
	}
	d := decoder{m: m}
	t := &TaskInfo{ID: d.int("id"), Method: d.str("method"), State: int(d.int("state")), Owner: d.optInt64("owner")}
	if d.err != nil {
		return nil, fmt.Errorf("koji getTaskInfo: %w", d.err)
	}
	return t, nil
}

// WaitTask polls a task every interval until it is closed (nil), failed or
// canceled (an error), or ctx ends.
func (c *Client) WaitTask(ctx context.Context, taskID int64, interval time.Duration) error {
	for {
		t, err := c.GetTaskInfo(ctx, taskID)
		if err != nil {
			return err
		}
		switch t.State {
		case TaskClosed:
			return nil
		case TaskFailed, TaskCanceled:
			return fmt.Errorf("koji task %d (%s) ended in state %d", taskID, t.Method, t.State)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("koji task %d (%s): %w", taskID, t.Method, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// BuildURL returns the URL of a build's directory under topurl (Koji's
// pathinfo.build).
func BuildURL(topurl string, build *BuildInfo) string {
	base := strings.TrimRight(topurl, "/")
	if build.VolumeName != "" && build.VolumeName != "DEFAULT" {
		base += "/vol/" + url.PathEscape(build.VolumeName)
	}
	return base + "/packages/" + url.PathEscape(build.PackageName) + "/" + url.PathEscape(build.Version) + "/" + url.PathEscape(build.Release)
}

func rpmPath(rpm *RPMInfo) string {
	return url.PathEscape(rpm.Arch) + "/" + url.PathEscape(rpm.NVRA()+".rpm")
}

// RPMURL returns where an RPM of a build is downloaded from under topurl.
func RPMURL(topurl string, build *BuildInfo, rpm *RPMInfo) string {
	return BuildURL(topurl, build) + "/" + rpmPath(rpm)
}

// SignedRPMURL returns where writeSignedRPM puts the copy signed with sigkey.
func SignedRPMURL(topurl string, build *BuildInfo, rpm *RPMInfo, sigkey string) string {
	return BuildURL(topurl, build) + "/data/signed/" + url.PathEscape(strings.ToLower(sigkey)) + "/" + rpmPath(rpm)
}

func rpmInfo(m map[string]any) (*RPMInfo, error) {
	d := decoder{m: m}
	r := &RPMInfo{
		ID:             d.int("id"),
		BuildID:        d.optInt64("build_id"),
		Name:           d.str("name"),
		Epoch:          d.optInt("epoch"),
		Version:        d.str("version"),
		Release:        d.str("release"),
		Arch:           d.str("arch"),
		PayloadHash:    d.optStr("payloadhash"),
		Size:           d.optInt64("size"),
		ExternalRepoID: d.optInt64("external_repo_id"),
	}
	return r, d.err
}

// decoder reads typed members of a struct, keeping the first error.
type decoder struct {
	m   map[string]any
	err error
}

func (d *decoder) fail(key string, v any, want string) {
	if d.err == nil {
		d.err = fmt.Errorf("member %q is %T, not %s", key, v, want)
	}
}

func (d *decoder) int(key string) int64 {
	v, ok := d.m[key]
	if !ok {
		if d.err == nil {
			d.err = fmt.Errorf("member %q missing", key)
		}
		return 0
	}
	n, ok := v.(int64)
	if !ok {
		d.fail(key, v, "an integer")
	}
	return n
}

func (d *decoder) optInt64(key string) int64 {
	v := d.m[key]
	if v == nil {
		return 0
	}
	n, ok := v.(int64)
	if !ok {
		d.fail(key, v, "an integer")
	}
	return n
}

func (d *decoder) optInt(key string) *int {
	v := d.m[key]
	if v == nil {
		return nil
	}
	n, ok := v.(int64)
	if !ok || n != int64(int(n)) {
		d.fail(key, v, "an integer")
		return nil
	}
	i := int(n)
	return &i
}

func (d *decoder) str(key string) string {
	v, ok := d.m[key]
	if !ok {
		if d.err == nil {
			d.err = fmt.Errorf("member %q missing", key)
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		d.fail(key, v, "a string")
	}
	return s
}

func (d *decoder) optStr(key string) string {
	v := d.m[key]
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		d.fail(key, v, "a string")
	}
	return s
}

// IsNotFound reports whether err says a lookup found nothing.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
