package policy

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Findings beyond parse errors: a rule that lets any swarm user name any
// variable it admits (a warning), and a reusable rule whose service-side
// conditions Swarm cannot honour (an error). Both are decided from the
// parsed rule and the named groups of its match patterns.

// Warnings returns the policy's warnings, in file order: rules that are
// valid but let anyone who can create a swarm secret choose the variable.
// `policy validate` prints them as FILE:LINE:COL: warning: ...; --strict
// makes them errors.
func (p *Policy) Warnings() Problems { return append(Problems(nil), p.warnings...) }

// lint checks rule r (parsed from n, whose keys are m) once its match,
// allow and output are known: reuse: true with service-side conditions is
// an error, a secret-chosen variable without a service-side allow a warning.
func (ps *parser) lint(n *yaml.Node, m map[string]entry, r *rule, what string, groups map[string]groupDef) {
	if r.reuse {
		if uses := serviceSideUses(r, groups); len(uses) > 0 {
			at := n
			if v, ok := m["reuse"]; ok {
				at = v.val
			}
			ps.add(at, "%s has reuse: true but depends on the task (%s): Swarm gives the value it fetched for one task to every later task on the same node that uses this secret, whatever the plugin answers for them, so a service-side condition cannot be enforced; use reuse: false",
				what, strings.Join(uses, ", "))
		}
	}
	chosen := secretChosen(r, groups)
	if len(chosen) == 0 || hasServiceAllow(r) {
		return
	}
	at := n
	for _, k := range []string{"variable", "bundle"} {
		if v, ok := m[k]; ok {
			at = v.val
			break
		}
	}
	ps.warnings = append(ps.warnings, Problem{File: ps.file, Line: at.Line, Col: at.Column, Warning: true,
		Msg: oneLine(fmt.Sprintf("%s takes the variable from the secret (%s) and no allow condition looks at the service: anyone who can create a swarm secret may name any variable this rule admits; add an allow on service_labels, service, image or node, e.g. service_labels: {com.docker.stack.namespace: \"{stack}\"}",
			what, strings.Join(chosen, ", ")))})
}

// secretChosen lists the secret-side placeholders (a secret label, the
// secret's name or key, its stack, a group captured from the secret) in
// the ids r hands out.
func secretChosen(r *rule, groups map[string]groupDef) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range outputIDs(r) {
		for _, pt := range t.parts {
			ph := pt.ph
			if ph == nil || ph.kind.serviceSide() || ph.kind == phMatch && groups[ph.arg].serviceSide {
				continue
			}
			if s := ph.String(); !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// serviceSideUses lists what of the task r depends on: service-side match
// or allow conditions, and service-side placeholders in its ids, versions
// and identity.
func serviceSideUses(r *rule, groups map[string]groupDef) []string {
	var out []string
	seen := map[string]bool{}
	note := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, c := range append(append([]cond(nil), r.match...), r.allow...) {
		if c.field.serviceSide() {
			note(c.path)
		}
	}
	ts := outputIDs(r)
	if r.version != nil {
		ts = append(ts, *r.version)
	}
	if r.bundle != nil {
		for _, mb := range r.bundle.members {
			if mb.version != nil {
				ts = append(ts, *mb.version)
			}
		}
	}
	if r.identity != nil {
		ts = append(ts, *r.identity)
	}
	for _, t := range ts {
		for _, s := range taskPlaceholders(t, groups) {
			note(s)
		}
	}
	return out
}

// outputIDs are the variable id templates r hands out: its variable, or
// every bundle member's.
func outputIDs(r *rule) []template {
	if r.bundle == nil {
		return []template{r.variable}
	}
	out := make([]template, 0, len(r.bundle.members))
	for _, mb := range r.bundle.members {
		out = append(out, mb.variable)
	}
	return out
}

func hasServiceAllow(r *rule) bool {
	for _, c := range r.allow {
		if c.field.serviceSide() {
			return true
		}
	}
	return false
}
