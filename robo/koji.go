package robo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signet-project/signet/internal/fileperm"
	"github.com/signet-project/signet/internal/koji"
)

// dialKoji opens a session with a configured hub, logged in with
// signet-robo's own certificate.
func dialKoji(ctx context.Context, in *KojiInstanceConfig) (KojiHub, error) {
	key := in.Key
	if key == "" {
		key = in.Cert
	}
	if err := fileperm.CheckPrivate(key, "Koji client key"); err != nil {
		return nil, failf("%v", err)
	}
	tc, err := koji.TLSConfig(in.CA, in.Cert, in.Key)
	if err != nil {
		return nil, failf("%v", err)
	}
	c, err := koji.New(in.Hub, koji.Options{TLS: tc, Timeout: 2 * time.Minute})
	if err != nil {
		return nil, failf("%v", err)
	}
	if err := c.SSLLogin(ctx, ""); err != nil {
		return nil, err
	}
	return &kojiSession{c: c}, nil
}

// kojiSession is a KojiHub over internal/koji.
type kojiSession struct{ c *koji.Client }

func (s *kojiSession) Build(ctx context.Context, id int64) (string, int, error) {
	b, err := s.c.GetBuild(ctx, id)
	if err != nil {
		if koji.IsNotFound(err) {
			return "", 0, failf("Koji has no build %d", id)
		}
		return "", 0, err
	}
	return b.NVR, b.State, nil
}

func (s *kojiSession) BuildTags(ctx context.Context, id int64) ([]string, error) {
	v, err := s.c.Call(ctx, "listTags", koji.Kwargs{"build": id})
	if err != nil {
		return nil, err
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("koji listTags: unexpected result %T", v)
	}
	var tags []string
	for _, e := range a {
		m, _ := e.(map[string]any)
		name, ok := m["name"].(string)
		if !ok {
			return nil, errors.New("koji listTags: an entry without a name")
		}
		tags = append(tags, name)
	}
	return tags, nil
}

func (s *kojiSession) BuildRPMs(ctx context.Context, id int64) ([]KojiRPM, error) {
	rs, err := s.c.ListRPMs(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]KojiRPM, len(rs))
	for i, r := range rs {
		out[i] = KojiRPM{ID: r.ID, Name: r.Name, Version: r.Version, Release: r.Release, Arch: r.Arch,
			Epoch: r.Epoch, PayloadHash: r.PayloadHash, Size: r.Size}
	}
	return out, nil
}

func (s *kojiSession) HasSignature(ctx context.Context, rpmID int64, sigkey string) (bool, error) {
	sigs, err := s.c.QueryRPMSigs(ctx, rpmID, sigkey)
	if err != nil {
		return false, err
	}
	for _, sg := range sigs {
		if sg.RPMID == rpmID && sg.SigKey == sigkey {
			return true, nil
		}
	}
	return false, nil
}

func (s *kojiSession) TagHistory(ctx context.Context, id int64) ([]tagEvent, error) {
	v, err := s.c.Call(ctx, "queryHistory", koji.Kwargs{"build": id, "tables": []any{"tag_listing"}})
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("koji queryHistory: unexpected result %T", v)
	}
	rows, _ := m["tag_listing"].([]any)
	var out []tagEvent
	for _, r := range rows {
		e, ok := r.(map[string]any)
		if !ok {
			return nil, errors.New("koji queryHistory: unexpected tag_listing entry")
		}
		tag, ok1 := e["tag.name"].(string)
		who, ok2 := e["creator_name"].(string)
		if !ok1 || !ok2 {
			return nil, errors.New("koji queryHistory: a tag_listing entry without tag.name or creator_name")
		}
		var ts float64
		switch x := e["create_ts"].(type) {
		case float64:
			ts = x
		case int64:
			ts = float64(x)
		}
		active, _ := e["active"].(bool)
		out = append(out, tagEvent{Tag: tag, Creator: who, Created: ts, Active: active})
	}
	return out, nil
}

func (s *kojiSession) WriteSignedRPM(ctx context.Context, rpmID int64, sigkey string) error {
	return s.c.WriteSignedRPM(ctx, rpmID, sigkey)
}

func (s *kojiSession) MoveBuild(ctx context.Context, from, to string, id int64) (int64, error) {
	return s.c.MoveBuild(ctx, from, to, id)
}

func (s *kojiSession) TaskState(ctx context.Context, id int64) (int, string, error) {
	t, err := s.c.GetTaskInfo(ctx, id)
	if err != nil {
		return 0, "", err
	}
	if t.State != koji.TaskFailed {
		return t.State, "", nil
	}
	// getTaskResult raises the task's own fault.
	_, rerr := s.c.Call(ctx, "getTaskResult", id)
	if rerr != nil {
		return t.State, rerr.Error(), nil
	}
	return t.State, "", nil
}

func (s *kojiSession) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.c.Logout(ctx)
}
