package policy

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Whom a Get is made as in Conjur (the per-request identity mode): a
// rule's identity: template, or the file's top-level default. The template
// takes the same placeholders and the same safety checks as variable: a
// service-side value must be one path segment, and the result must be a
// valid id (no empty, "." or ".." segment, no leading /, no control or
// look-alike character). It names the Conjur host below the authn-jwt
// service's identity-path (the JWT's sub claim).

// identity parses an identity template (rule's, or the default when groups
// is nil) and checks what can be checked before a request arrives.
func (ps *parser) identity(n *yaml.Node, what string, groups map[string]groupDef) *template {
	s, ok := ps.str(n, "identity")
	if !ok {
		return nil
	}
	t, terrs := parseTemplate(s)
	for _, te := range terrs {
		ps.addIn(n, te.off, "%s identity: %s", what, te.msg)
	}
	bad := len(terrs) > 0
	var sample strings.Builder
	for _, p := range t.parts {
		if p.ph == nil {
			if i, why := badChar(p.lit); why != "" {
				ps.addIn(n, p.off+i, "%s identity %q %s", what, s, why)
				bad = true
			}
			sample.WriteString(p.lit)
			continue
		}
		sample.WriteString("x")
		if p.ph.kind != phMatch {
			continue
		}
		if groups == nil {
			ps.addIn(n, p.off, "the default identity cannot use %s: only a rule's match defines groups; set identity in the rule instead", p.ph)
			bad = true
		} else if _, ok := groups[p.ph.arg]; !ok {
			ps.addIn(n, p.off, "%s identity: %s: %s", what, p.ph, noGroupMsg(p.ph.arg, groups))
			bad = true
		}
	}
	if bad {
		return nil
	}
	if why := checkID(sample.String()); why != "" && !strings.Contains(why, "bytes long") {
		ps.add(n, "%s identity %q can never be a valid host id: it %s", what, s, why)
		return nil
	}
	return &t
}

// identityOf returns the template that names r's identity: its own, or the
// file's default (nil when neither is set).
func (p *Policy) identityOf(r *rule) *template {
	if r.identity != nil {
		return r.identity
	}
	return p.identity
}

// resolveIdentity expands the identity template for d (no template: d is
// returned as is), or returns the refusal that denies the Get.
func resolveIdentity(t *template, req *Request, groups map[string]groupVal, d *Decision) refusal {
	if t == nil {
		return refusal{}
	}
	id, no := expand(*t, req, groups, true)
	if no.denies() {
		return refusal{strings.Replace(no.condition, "variable", "identity", 1), no.reason}
	}
	if why := checkID(id); why != "" {
		return refusal{"identity", fmt.Sprintf("the resolved identity %s %s", quote(id), why)}
	}
	d.Identity = id
	return refusal{}
}

// RuleIdentity is the identity template that applies to one rule.
type RuleIdentity struct {
	Rule     string `json:"rule"`
	Identity string `json:"identity"` // the template; "" = none
	Default  bool   `json:"default"`  // from the file's top-level identity
}

// Identities returns, per rule in order, the identity template that names
// whom its Gets are made as, or nil when the file sets no identity at all.
func (p *Policy) Identities() []RuleIdentity {
	any := p.identity != nil
	out := make([]RuleIdentity, len(p.rules))
	for i, r := range p.rules {
		out[i].Rule = r.name
		if t := p.identityOf(r); t != nil {
			out[i].Identity, out[i].Default = t.raw, r.identity == nil
			any = any || r.identity != nil
		}
	}
	if !any {
		return nil
	}
	return out
}

// WithoutIdentity returns the rules that name no identity (neither their
// own nor a default): in the per-request identity mode their Gets are
// denied.
func (p *Policy) WithoutIdentity() []string {
	var out []string
	for _, r := range p.rules {
		if p.identityOf(r) == nil {
			out = append(out, r.name)
		}
	}
	return out
}
