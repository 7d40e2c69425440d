package policy

import "strings"

// Swarm keeps a reusable answer (reuse: true) on the node under the plain
// secret id and hands it to every later task there that uses the secret,
// whatever the plugin would answer for that task. lint refuses a reusable
// rule that itself depends on the task; lintReuse reasons about the whole
// rule list: an earlier rule whose match depends on the task and may take
// some of the same secrets decides them for some tasks only (first match
// wins), so the reusable copy would bypass its answer; and an identity
// taken from the task would hand one identity's value to another.

// lintReuse reports, at each reuse: true, every earlier rule that matches
// some of its secrets depending on the task, naming the pair, and a
// service-side identity (the rule's or the file's default).
func (ps *parser) lintReuse(p *Policy) {
	for j, r := range p.rules {
		if !r.reuse {
			continue
		}
		at := func(format string, args ...any) {
			ps.addAt(r.reuseAt[0], r.reuseAt[1], format, args...)
		}
		for _, q := range p.rules[:j] {
			uses := taskMatch(q)
			if len(uses) == 0 || !mayShareSecrets(q, r) {
				continue
			}
			at("rule %q has reuse: true, but rule %q (line %d), before it, matches some of the same secrets depending on the task (%s): Swarm gives the copy fetched for one task to every later task on the node that uses the secret, so rule %q's answer for its tasks would be bypassed; use reuse: false, or give the two rules distinct secrets (a secret name or label that only one of them matches)",
				r.name, q.name, q.line, strings.Join(uses, ", "), q.name)
		}
		if r.identity == nil && p.identity != nil { // a rule's own identity is lint's
			if uses := taskPlaceholders(*p.identity, nil); len(uses) > 0 {
				at("rule %q has reuse: true, but the file's default identity depends on the task (%s): Swarm would hand the value fetched as one identity to tasks of another; use reuse: false, or give the rule an identity taken from the secret",
					r.name, strings.Join(uses, ", "))
			}
		}
	}
}

// taskMatch lists q's match conditions on the task (service, service
// labels, image, node).
func taskMatch(q *rule) []string {
	var out []string
	for _, c := range q.match {
		if c.field.serviceSide() {
			out = append(out, c.path)
		}
	}
	return out
}

// taskPlaceholders lists the service-side placeholders of t: the task's
// fields and the groups (defs) captured from them.
func taskPlaceholders(t template, defs map[string]groupDef) []string {
	var out []string
	for _, pt := range t.parts {
		if ph := pt.ph; ph != nil && (ph.kind.serviceSide() || ph.kind == phMatch && defs[ph.arg].serviceSide) {
			out = append(out, ph.String())
		}
	}
	return out
}

// mayShareSecrets reports whether some secret could satisfy the secret-side
// match conditions of both q and r. It answers false only when a condition
// of each on the same secret field (name, or the same label) admits no
// common value; otherwise it assumes they may.
func mayShareSecrets(q, r *rule) bool {
	for _, a := range q.match {
		if a.field.serviceSide() {
			continue
		}
		for _, b := range r.match {
			if b.field == a.field && b.key == a.key && disjoint(a.pats, b.pats) {
				return false
			}
		}
	}
	return true
}

// disjoint reports whether no value matches a pattern of as and one of bs.
func disjoint(as, bs []pattern) bool {
	for _, a := range as {
		for _, b := range bs {
			if !disjointPattern(a, b) {
				return false
			}
		}
	}
	return true
}

// disjointPattern reports whether no value can match both a and b (match
// patterns, always compiled and anchored): when one is a literal, whether
// the other refuses it; else whether their literal prefixes diverge.
func disjointPattern(a, b pattern) bool {
	pa, wholeA := a.re.LiteralPrefix()
	pb, wholeB := b.re.LiteralPrefix()
	switch {
	case wholeA:
		return !b.re.MatchString(pa)
	case wholeB:
		return !a.re.MatchString(pb)
	}
	return !strings.HasPrefix(pa, pb) && !strings.HasPrefix(pb, pa)
}
