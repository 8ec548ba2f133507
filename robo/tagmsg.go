package robo

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// tagMessage is the body of Koji's buildsys.tag message, as Fedora's
// messaging plugin sends it when a build is tagged:
//
//	{"build_id": 799208, "name": "python-fmn-rules", "version": "0.9.1",
//	 "release": "1.el7", "tag": "epel7-infra", "tag_id": 374,
//	 "instance": "primary", "user": "puiterwijk", "owner": "sayanchowdhury"}
//
// Only build_id, name, version, release and tag are needed; instance may
// be left out when one instance is configured. user is not trusted:
// trusted taggers are checked against Koji's own history.
type tagMessage struct {
	BuildID  int64  `json:"build_id"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Release  string `json:"release"`
	Tag      string `json:"tag"`
	Instance string `json:"instance"`
	Owner    string `json:"owner"`
	User     string `json:"user"`
}

// maxNVRPart bounds a name, version or release.
const maxNVRPart = 256

func (t *tagMessage) nvr() string { return t.Name + "-" + t.Version + "-" + t.Release }

// parseTagMessage decodes and checks a buildsys.tag body.
func parseTagMessage(body []byte) (*tagMessage, error) {
	var t tagMessage
	if _, err := decodeObject(body, &t); err != nil {
		return nil, err
	}
	if t.BuildID <= 0 {
		return nil, malformed("build_id must be a positive integer")
	}
	for _, f := range []struct{ name, v string }{{"name", t.Name}, {"version", t.Version}, {"release", t.Release}} {
		if err := checkNVRPart(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if strings.Contains(t.Version, "-") || strings.Contains(t.Release, "-") {
		return nil, malformed("version and release may not hold '-'")
	}
	if !kojiName.MatchString(t.Tag) {
		return nil, malformed("tag %q is not a Koji tag name", truncate(t.Tag, 64))
	}
	if t.Instance != "" && !kojiName.MatchString(t.Instance) {
		return nil, malformed("instance %q is not a Koji instance name", truncate(t.Instance, 64))
	}
	return &t, nil
}

func checkNVRPart(field, v string) error {
	if v == "" || len(v) > maxNVRPart {
		return malformed("%s must be 1 to %d characters", field, maxNVRPart)
	}
	if strings.ContainsFunc(v, func(r rune) bool {
		return r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._+~^-", r))
	}) || strings.HasPrefix(v, ".") || strings.HasPrefix(v, "-") {
		return malformed("%s %q holds characters an RPM's never does", field, truncate(v, 64))
	}
	return nil
}

// tagMatch is what a rule makes of a tagging: where the build moves to,
// with which key, and whose tagging counts.
type tagMatch struct {
	rule     *TagRuleConfig
	from, to string
	// trusted, if set, are the only users whose tagging into from is
	// acted on.
	trusted []string
	sideTag string
}

// tagRules is the tag-sign configuration, ready to match messages.
type tagRules struct {
	cfg   *TagConfig
	sides []sideRule
}

type sideRule struct {
	rule *TagRuleConfig
	re   *regexp.Regexp
}

func newTagRules(c *TagConfig) (*tagRules, error) {
	tr := &tagRules{cfg: c}
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.SideTags == nil {
			continue
		}
		re, err := r.sideTagRE()
		if err != nil {
			return nil, err
		}
		tr.sides = append(tr.sides, sideRule{rule: r, re: re})
	}
	return tr, nil
}

// instance returns the configured instance a message names (the only one
// when it names none).
func (tr *tagRules) instance(name string) *KojiInstanceConfig {
	if name == "" && len(tr.cfg.Instances) == 1 {
		return &tr.cfg.Instances[0]
	}
	for i := range tr.cfg.Instances {
		if tr.cfg.Instances[i].Name == name {
			return &tr.cfg.Instances[i]
		}
	}
	return nil
}

// match finds the rule for a tagging into tag on instance: a rule whose
// from is tag, else the first rule whose side-tag pattern matches.
func (tr *tagRules) match(instance, tag string) *tagMatch {
	for i := range tr.cfg.Rules {
		r := &tr.cfg.Rules[i]
		if r.Instance == instance && r.From == tag {
			return &tagMatch{rule: r, from: r.From, to: r.To, trusted: r.TrustedTaggers}
		}
	}
	for _, s := range tr.sides {
		if s.rule.Instance != instance {
			continue
		}
		m := s.re.FindStringSubmatch(tag)
		if m == nil {
			continue
		}
		side := m[s.re.SubexpIndex("sidetag")]
		return &tagMatch{rule: s.rule, from: tag, to: strings.Replace(s.rule.SideTags.To, "<sidetag>", side, 1),
			trusted: s.rule.SideTags.TrustedTaggers, sideTag: side}
	}
	return nil
}

// tagEvent is one entry of the tag_listing table of Koji's queryHistory:
// a build's tagging into a tag, by creator, active until revoked.
type tagEvent struct {
	Tag     string
	Creator string
	Created float64 // create_ts
	Active  bool
}

// latestTagger returns who made the build's latest active tagging into
// tag, and false when the history holds none.
func latestTagger(events []tagEvent, tag string) (string, bool) {
	best := -1
	for i, e := range events {
		if e.Active && e.Tag == tag && (best < 0 || e.Created > events[best].Created) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return events[best].Creator, true
}

// checkTagger refuses a tagging into m.from that none of m.trusted made.
func (m *tagMatch) checkTagger(events []tagEvent) error {
	if len(m.trusted) == 0 {
		return nil
	}
	who, ok := latestTagger(events, m.from)
	if !ok {
		//lint:ignore ST1005 Koji is a proper noun
		return fmt.Errorf("Koji's history has no active tagging of the build into %s", m.from)
	}
	if !slices.Contains(m.trusted, who) {
		return fmt.Errorf("the build was tagged into %s by %q, who is not a trusted tagger (%s)", m.from, who, strings.Join(m.trusted, ", "))
	}
	return nil
}

// ostreeMessage is the body of pungi's compose.ostree message:
//
//	{"ref": "fedora/43/x86_64/silverblue", "commitid": "f99114401f...",
//	 "arch": "x86_64", "variant": "Silverblue",
//	 "location": "https://kojipkgs.../repo", "compose_id": "Fedora-43-..."}
//
// commitid is null when the compose made no new commit. location is not
// used: repositories come from the configuration.
type ostreeMessage struct {
	Ref       string  `json:"ref"`
	CommitID  *string `json:"commitid"`
	Arch      string  `json:"arch"`
	Variant   string  `json:"variant"`
	ComposeID string  `json:"compose_id"`
}

// parseOSTreeMessage decodes and checks a compose.ostree body; a nil
// commit means there is nothing to sign.
func parseOSTreeMessage(body []byte) (*ostreeMessage, error) {
	var o ostreeMessage
	if _, err := decodeObject(body, &o); err != nil {
		return nil, err
	}
	if !validRef(o.Ref) {
		return nil, malformed("ref %q is not an OSTree ref", truncate(o.Ref, 64))
	}
	if o.CommitID != nil && !isSHA256Hex(*o.CommitID) {
		return nil, malformed("commitid must be 64 lower-case hex digits")
	}
	return &o, nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
