package robo

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// TagConfig configures the tag-sign kind, robosignatory's TagSigner: a
// build tagged into a rule's from-tag has every RPM signed through Koji,
// its signed copies written, and is moved to the rule's to-tag.
type TagConfig struct {
	Enabled     bool     `mapstructure:"enabled"`
	RoutingKeys []string `mapstructure:"routing_keys"`
	Schemas     []string `mapstructure:"schemas"`
	// MoveTimeout bounds the wait for Koji's moveBuild task (default
	// 15m); past it the message fails and the build stays where it is
	// unless the task still completes later.
	MoveTimeout string `mapstructure:"move_timeout"`
	// Instances are the Koji hubs, by the name messages give ("instance")
	// and the signet client's Koji instance of that name signs through.
	Instances []KojiInstanceConfig `mapstructure:"instances"`
	Rules     []TagRuleConfig      `mapstructure:"rules"`

	moveTimeout time.Duration
}

// KojiInstanceConfig is one Koji hub signet-robo logs in to, with its own
// client certificate, to write signed copies and move builds.
type KojiInstanceConfig struct {
	// Name is the instance's name in messages (Fedora: "primary").
	Name string `mapstructure:"name"`
	// ClientInstance is the name of the Koji instance in the signet
	// client configuration that signs for this one (default: Name).
	ClientInstance string `mapstructure:"client_instance"`
	// Hub is the hub's XML-RPC URL (https).
	Hub string `mapstructure:"hub"`
	// Cert holds signet-robo's certificate, and its key unless Key is
	// set (PEM); CA is the hub's CA.
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	CA   string `mapstructure:"ca"`
}

// TagRuleConfig is one signing rule: builds tagged into From are signed
// with Key and moved to To.
type TagRuleConfig struct {
	// Instance names the Koji instance (default: the only one).
	Instance string `mapstructure:"instance"`
	From     string `mapstructure:"from"`
	To       string `mapstructure:"to"`
	// Key and PassphraseFile: the signet key; Sigkey is the sigkey Koji
	// files its signatures under (the last 8 hex digits of the key ID,
	// lower case), robosignatory's keyid.
	Key            string `mapstructure:"key"`
	PassphraseFile string `mapstructure:"passphrase_file"`
	Sigkey         string `mapstructure:"sigkey"`
	// FileSigningKey, optional, adds IMA signatures made with that key.
	FileSigningKey            string `mapstructure:"file_signing_key"`
	FileSigningPassphraseFile string `mapstructure:"file_signing_passphrase_file"`
	V3Signature               bool   `mapstructure:"v3_signature"`
	// TrustedTaggers, if set, are the only Koji users whose tagging into
	// From is acted on.
	TrustedTaggers []string `mapstructure:"trusted_taggers"`
	// SideTags extends the rule to side tags.
	SideTags *SideTagConfig `mapstructure:"sidetags"`
}

// SideTagConfig extends a rule to side tags, as robosignatory does: a
// side tag is named by Pattern, where <from> and <to> stand for the rule's
// tags and <seq_id> for a positive number; a build tagged into From
// (<sidetag> standing for a side tag's name) by one of TrustedTaggers is
// signed with the rule's key and moved to To.
type SideTagConfig struct {
	Pattern        string   `mapstructure:"pattern"`
	From           string   `mapstructure:"from"`
	To             string   `mapstructure:"to"`
	TrustedTaggers []string `mapstructure:"trusted_taggers"`
}

// kojiName is what a Koji tag, user or instance name may hold here.
var kojiName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+@-]{0,254}$`)

var sigkeyRE = regexp.MustCompile(`^[0-9a-f]{8}$`)

func (c *TagConfig) check() (bool, error) {
	if !c.Enabled {
		return false, nil
	}
	if len(c.RoutingKeys) == 0 {
		return true, errors.New("[tag_sign] is enabled but has no routing_keys")
	}
	if len(c.Schemas) == 0 {
		c.Schemas = []string{"base.message", "koji_fedoramessaging.tag.TagV1"}
	}
	c.moveTimeout = 15 * time.Minute
	if c.MoveTimeout != "" {
		d, err := time.ParseDuration(c.MoveTimeout)
		if err != nil || d <= 0 {
			return true, fmt.Errorf("[tag_sign] move_timeout = %q is not a duration such as \"15m\"", c.MoveTimeout)
		}
		c.moveTimeout = d
	}
	if len(c.Instances) == 0 {
		return true, errors.New("[tag_sign] names no Koji instance ([[tag_sign.instances]])")
	}
	names := map[string]bool{}
	for i := range c.Instances {
		in := &c.Instances[i]
		if !kojiName.MatchString(in.Name) {
			return true, fmt.Errorf("[[tag_sign.instances]] name %q: letters, digits and ._+@- only", in.Name)
		}
		if names[in.Name] {
			return true, fmt.Errorf("[[tag_sign.instances]] %s is listed twice", in.Name)
		}
		names[in.Name] = true
		if in.ClientInstance == "" {
			in.ClientInstance = in.Name
		}
		if u, err := url.Parse(in.Hub); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return true, fmt.Errorf("[[tag_sign.instances]] %s: hub must be the hub's http(s) URL", in.Name)
		}
		if in.Cert == "" || in.CA == "" {
			return true, fmt.Errorf("[[tag_sign.instances]] %s needs cert (signet-robo's Koji certificate) and ca", in.Name)
		}
	}
	if len(c.Rules) == 0 {
		return true, errors.New("[tag_sign] has no rules ([[tag_sign.rules]])")
	}
	froms := map[[2]string]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.Instance == "" {
			if len(c.Instances) != 1 {
				return true, fmt.Errorf("[[tag_sign.rules]] from %q: name its instance (there are %d)", r.From, len(c.Instances))
			}
			r.Instance = c.Instances[0].Name
		}
		where := fmt.Sprintf("[[tag_sign.rules]] %s/%s", r.Instance, r.From)
		if !names[r.Instance] {
			return true, fmt.Errorf("%s: no instance %q", where, r.Instance)
		}
		if !kojiName.MatchString(r.From) || !kojiName.MatchString(r.To) {
			return true, fmt.Errorf("%s: from and to must be Koji tag names", where)
		}
		if froms[[2]string{r.Instance, r.From}] {
			return true, fmt.Errorf("%s: two rules have this from tag", where)
		}
		froms[[2]string{r.Instance, r.From}] = true
		if r.Key == "" || r.PassphraseFile == "" {
			return true, fmt.Errorf("%s needs key and passphrase_file", where)
		}
		if !sigkeyRE.MatchString(r.Sigkey) {
			return true, fmt.Errorf("%s: sigkey %q must be 8 lower-case hex digits (the key ID's last 8, as Koji names signatures)", where, r.Sigkey)
		}
		if (r.FileSigningKey == "") != (r.FileSigningPassphraseFile == "") {
			return true, fmt.Errorf("%s: file_signing_key and file_signing_passphrase_file go together", where)
		}
		for _, u := range r.TrustedTaggers {
			if !kojiName.MatchString(u) {
				return true, fmt.Errorf("%s: trusted tagger %q is not a Koji user name", where, u)
			}
		}
		if r.SideTags != nil {
			if _, err := r.sideTagRE(); err != nil {
				return true, fmt.Errorf("%s: sidetags: %w", where, err)
			}
			if len(r.SideTags.TrustedTaggers) == 0 {
				return true, fmt.Errorf("%s: sidetags needs trusted_taggers (anyone may tag into a side tag)", where)
			}
			for _, u := range r.SideTags.TrustedTaggers {
				if !kojiName.MatchString(u) {
					return true, fmt.Errorf("%s: sidetags: trusted tagger %q is not a Koji user name", where, u)
				}
			}
		}
	}
	return true, nil
}

// sideTagRE compiles the rule's side-tag from pattern: a whole-name match
// with a group "sidetag" (the side tag's name) and "seq" (its number).
func (r *TagRuleConfig) sideTagRE() (*regexp.Regexp, error) {
	s := r.SideTags
	if s.Pattern == "" || s.From == "" || s.To == "" {
		return nil, errors.New("pattern, from and to are all needed")
	}
	if strings.Count(s.Pattern, "<seq_id>") != 1 {
		return nil, fmt.Errorf("pattern %q must hold <seq_id> once", s.Pattern)
	}
	if strings.Count(s.From, "<sidetag>") != 1 || strings.Count(s.To, "<sidetag>") != 1 {
		return nil, errors.New("from and to must each hold <sidetag> once")
	}
	filled := strings.NewReplacer("<from>", r.From, "<to>", r.To).Replace(s.Pattern)
	pre, post, _ := strings.Cut(filled, "<seq_id>")
	side := regexp.QuoteMeta(pre) + `(?P<seq>[1-9][0-9]{0,17})` + regexp.QuoteMeta(post)
	fpre, fpost, _ := strings.Cut(s.From, "<sidetag>")
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(fpre) + `(?P<sidetag>` + side + `)` + regexp.QuoteMeta(fpost) + `$`)
	// The names it makes must be tag names.
	example := strings.Replace(filled, "<seq_id>", "1", 1)
	for _, n := range []string{strings.Replace(s.From, "<sidetag>", example, 1), strings.Replace(s.To, "<sidetag>", example, 1)} {
		if !kojiName.MatchString(n) || strings.ContainsAny(n, "<>") {
			return nil, fmt.Errorf("it makes %q, which is not a Koji tag name", n)
		}
	}
	return re, nil
}

// OSTreeConfig configures the ostree-sign kind, robosignatory's
// AtomicSigner: a pungi.compose.ostree message names a ref and a commit;
// for a configured ref, the commit in that ref's repository is signed, its
// .commitmeta written beside it, and the ref updated if configured.
// Repositories come only from here, never from a message.
type OSTreeConfig struct {
	Enabled     bool              `mapstructure:"enabled"`
	RoutingKeys []string          `mapstructure:"routing_keys"`
	Schemas     []string          `mapstructure:"schemas"`
	Refs        []OSTreeRefConfig `mapstructure:"refs"`
}

// OSTreeRefConfig is one ref signet-robo signs commits of.
type OSTreeRefConfig struct {
	Ref            string `mapstructure:"ref"`
	Repo           string `mapstructure:"repo"`
	Key            string `mapstructure:"key"`
	PassphraseFile string `mapstructure:"passphrase_file"`
	// UpdateRef writes the commit to repo/refs/heads/<ref> once signed.
	UpdateRef bool `mapstructure:"update_ref"`
}

// ostreeRef is what an OSTree ref may look like here: path segments of
// letters, digits and ._-, none of them . or ..
var ostreeRef = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$`)

func validRef(ref string) bool {
	return len(ref) <= 1024 && ostreeRef.MatchString(ref) && !slices.Contains(strings.Split(ref, "/"), "..")
}

func (c *OSTreeConfig) check() (bool, error) {
	if !c.Enabled {
		return false, nil
	}
	if len(c.RoutingKeys) == 0 {
		return true, errors.New("[ostree_sign] is enabled but has no routing_keys")
	}
	if len(c.Schemas) == 0 {
		c.Schemas = []string{"base.message", "pungi.compose.ostree"}
	}
	if len(c.Refs) == 0 {
		return true, errors.New("[ostree_sign] names no ref ([[ostree_sign.refs]])")
	}
	seen := map[string]bool{}
	for i := range c.Refs {
		r := &c.Refs[i]
		if !validRef(r.Ref) {
			return true, fmt.Errorf("[[ostree_sign.refs]] ref %q is not an OSTree ref", r.Ref)
		}
		if seen[r.Ref] {
			return true, fmt.Errorf("[[ostree_sign.refs]] %s is listed twice", r.Ref)
		}
		seen[r.Ref] = true
		if r.Key == "" || r.PassphraseFile == "" {
			return true, fmt.Errorf("[[ostree_sign.refs]] %s needs key and passphrase_file", r.Ref)
		}
		if !filepath.IsAbs(r.Repo) {
			return true, fmt.Errorf("[[ostree_sign.refs]] %s: repo must be an absolute path", r.Ref)
		}
		if fi, err := os.Stat(filepath.Join(r.Repo, "objects")); err != nil || !fi.IsDir() {
			return true, fmt.Errorf("[[ostree_sign.refs]] %s: %s is not an OSTree repository (no objects directory)", r.Ref, r.Repo)
		}
		r.Repo = filepath.Clean(r.Repo)
	}
	return true, nil
}
