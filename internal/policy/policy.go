package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Request is what Swarm tells the plugin about one secret of one task.
type Request struct {
	SecretName    string
	SecretLabels  map[string]string
	ServiceName   string
	ServiceLabels map[string]string
	Image         string
	NodeID        string
}

// Decision is the outcome of resolving a Request.
type Decision struct {
	Allow      bool
	Rule       string // "" when no rule matched
	Account    string // "" = the plugin's CONJUR_ACCOUNT
	Variable   string // resolved id ("" when denied before the id was known to be safe)
	Version    int    // 0 = latest
	DoNotReuse bool
	Reason     string // one line naming the rule and the condition (allow or deny)
	Condition  string // failing condition for denies, e.g. "allow.service_labels[com.docker.stack.namespace]"
	// Field and Decode shape a single variable's value ("" = hand it out
	// as fetched); see Render.
	Field  string
	Decode string
	// StaleIfError is the rule's stale_if_error window (0 = off): when a
	// fetch fails UNAVAILABLE or TIMEOUT, the last value fetched from Conjur
	// within it may be served.
	StaleIfError time.Duration
	// Bundle is set when the rule renders one secret from several
	// variables: the format and every member with its resolved id. Members
	// are resolved (and listed) even when an allow condition then denies.
	Bundle *Bundle
	// Identity is whom the Get is made as in Conjur in the per-request
	// identity mode (CONJUR_SWARM_IDENTITY=per-request): the rule's
	// identity: template, or the file's top-level default, expanded (the
	// JWT's sub claim). "" when the mapping sets no identity.
	Identity string
	// Mapping is the hash of the policy that decided (Policy.Hash): what
	// the driver keeps for a decision (prefetched values) is not used
	// under another one.
	Mapping string
}

// Policy is a parsed, validated mapping policy. It is immutable and safe for
// concurrent use.
type Policy struct {
	file     string
	hash     string
	account  string
	within   []string
	identity *template // the default identity (nil = none)
	rules    []*rule
	warnings Problems // see Warnings
}

// field is a part of the request a condition looks at.
type field int

const (
	fSecret field = iota
	fSecretLabels
	fService
	fServiceLabels
	fImage
	fNode
)

// conditionKeys are the keys of match and allow, in documentation order.
var conditionKeys = []string{"secret", "secret_labels", "service", "service_labels", "image", "node"}

var fieldByKey = map[string]field{
	"secret":         fSecret,
	"secret_labels":  fSecretLabels,
	"service":        fService,
	"service_labels": fServiceLabels,
	"image":          fImage,
	"node":           fNode,
}

func (f field) key() string { return conditionKeys[f] }

func (f field) labels() bool { return f == fSecretLabels || f == fServiceLabels }

// serviceSide reports whether the field describes the task rather than the
// secret.
func (f field) serviceSide() bool { return f != fSecret && f != fSecretLabels }

// describe names the request part for messages, e.g. `service label "env"`.
func (f field) describe(key string) string {
	switch f {
	case fSecret:
		return "secret name"
	case fSecretLabels:
		return fmt.Sprintf("secret label %s", quote(key))
	case fService:
		return "service name"
	case fServiceLabels:
		return fmt.Sprintf("service label %s", quote(key))
	case fImage:
		return "image"
	default:
		return "node"
	}
}

// value returns the request's value for the field and whether it is present.
func (f field) value(req *Request, key string) (string, bool) {
	switch f {
	case fSecret:
		return req.SecretName, req.SecretName != ""
	case fSecretLabels:
		v, ok := req.SecretLabels[key]
		return v, ok
	case fService:
		return req.ServiceName, req.ServiceName != ""
	case fServiceLabels:
		v, ok := req.ServiceLabels[key]
		return v, ok
	case fImage:
		return req.Image, req.Image != ""
	default:
		return req.NodeID, req.NodeID != ""
	}
}

// pattern is one glob or re: pattern. Static patterns are compiled when the
// file is parsed; allow globs with placeholders are compared as strings when
// their literal text has no glob syntax (exact), else compiled per request
// with the placeholder values quoted.
type pattern struct {
	raw  string
	re   *regexp.Regexp // nil when tmpl is set
	tmpl *template      // allow globs with placeholders
	// exact: tmpl's literal text holds no glob syntax, so the glob matches
	// exactly its expansion and needs no regexp per request.
	exact bool
}

// cond is one condition of match or allow: a request field (and label key)
// and the patterns, any one of which must match.
type cond struct {
	path  string // e.g. "match.secret_labels[conjur.variable]"
	field field
	key   string
	pats  []pattern
}

// rule is one entry of rules.
type rule struct {
	name     string
	line     int
	match    []cond
	allow    []cond
	variable template
	version  *template
	identity *template // nil = the file's default
	reuse    bool
	reuseAt  [2]int // line and column of reuse: true, for lintReuse
	// staleIfError is the stale_if_error window (0 = off).
	staleIfError time.Duration
	shape        shape       // field and decode of a single-variable rule
	bundle       *bundleSpec // nil for a single-variable rule
}

// File returns the name the policy was parsed from ("builtin" for Builtin).
func (p *Policy) File() string { return p.file }

// Hash returns "sha256:<hex>" of the file bytes, or "builtin".
func (p *Policy) Hash() string { return p.hash }

// Rules returns the rule names in order.
func (p *Policy) Rules() []string {
	out := make([]string, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.name
	}
	return out
}

// StaleRule is a rule with stale_if_error and its window.
type StaleRule struct {
	Name   string
	Window time.Duration
}

// StaleRules lists the rules with stale_if_error, in order.
func (p *Policy) StaleRules() []StaleRule {
	var out []StaleRule
	for _, r := range p.rules {
		if r.staleIfError > 0 {
			out = append(out, StaleRule{Name: r.name, Window: r.staleIfError})
		}
	}
	return out
}

// Account returns the file's account ("" = the plugin's CONJUR_ACCOUNT).
func (p *Policy) Account() string { return p.account }

// Within returns the branches every resolved id must lie under (nil = any).
func (p *Policy) Within() []string { return append([]string(nil), p.within...) }

// builtinYAML is the policy used when no mapping file is configured: a
// secret names its variable with the conjur.variable label.
const builtinYAML = `version: 1
rules:
  - name: by-label
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "{secret_label:conjur.variable}"
`

var builtin = func() *Policy {
	p, err := Parse("builtin", []byte(builtinYAML))
	if err != nil {
		panic("policy: the built-in policy does not parse: " + err.Error())
	}
	p.hash = "builtin"
	for i := range p.warnings {
		p.warnings[i].Msg = "the built-in policy (no mapping file) serves any variable a secret's conjur.variable label names, to any service: anyone who can create a swarm secret may read any variable the plugin's Conjur host can; to silence this, set a mapping file (CONJUR_SWARM_MAPPING_FILE) with within and allow (docs/examples/mapping.yml)"
	}
	return p
}()

// Builtin returns the built-in policy: the single by-label rule, which maps
// a secret labelled conjur.variable=ID to the variable ID, with no within
// restriction. Operators should ship a mapping file with within set.
func Builtin() *Policy { return builtin }

// quote renders a request value for a message: ASCII-only (so look-alike
// characters and control characters show as escapes) and at most 80 bytes
// of the original.
func quote(s string) string {
	const max = 80
	if len(s) <= max {
		return fmt.Sprintf("%+q", s)
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%+q… (%d bytes)", s[:cut], len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// oneLine escapes control characters (newlines included) and invalid UTF-8
// in text taken from a file or request, so messages stay on one line.
func oneLine(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
