package policy

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxValueLength bounds the request values a placeholder may take (label
// values, names, image, node, group captures), in bytes.
const MaxValueLength = 4096

// groupVal is the text a named group of a match re: pattern captured.
type groupVal struct {
	value       string
	serviceSide bool
}

// Resolve decides req. The first rule whose match holds decides: its
// variable is expanded and checked against the safety rules and within, its
// version is expanded, and its allow conditions must all hold, else the
// request is denied (there is no fall-through to later rules). When no rule
// matches, the request is denied.
//
// The request and the decision go by pointer below Resolve: it runs on every
// GetSecret handler's stack, which must stay under 8 KiB
// (docs/architecture.md, "Code shaped by a measurement").
func (p *Policy) Resolve(req Request) Decision {
	var d Decision
	p.resolve(&req, &d)
	return d
}

func (p *Policy) resolve(req *Request, d *Decision) {
	var misses []string
	for _, r := range p.rules {
		groups, failed := r.matches(req)
		if failed != "" {
			if len(misses) < maxMissesShown {
				misses = append(misses, fmt.Sprintf("%s: %s", r.name, failed))
			}
			continue
		}
		p.decide(r, req, groups, d)
		return
	}
	noMatch(p, req, misses, d)
}

// noMatch is the decision when no rule matched; misses says why the first
// ones did not.
func noMatch(p *Policy, req *Request, misses []string, d *Decision) {
	if n := len(p.rules) - len(misses); n > 0 {
		misses = append(misses, fmt.Sprintf("%d more", n))
	}
	*d = Decision{
		DoNotReuse: true,
		Condition:  "match",
		Reason: oneLine(fmt.Sprintf("no rule matched secret %s (%s); add a rule or fix the secret's labels",
			quote(req.SecretName), strings.Join(misses, "; "))),
	}
}

// maxMissesShown bounds how many rules a no-match reason lists.
const maxMissesShown = 8

// matches reports whether every match condition of r holds, with the named
// groups the re: patterns captured; else it returns the first condition that
// failed, e.g. "match.secret_labels[env] is missing".
func (r *rule) matches(req *Request) (map[string]groupVal, string) {
	var groups map[string]groupVal
	for _, c := range r.match {
		v, present := c.field.value(req, c.key)
		if !present {
			return nil, c.path + " is missing"
		}
		p, ok := c.first(v)
		if !ok {
			return nil, c.mismatch(v)
		}
		if p.re.NumSubexp() == 0 {
			continue
		}
		idx := p.re.FindStringSubmatchIndex(v)
		for i, name := range p.re.SubexpNames() {
			if name == "" || idx[2*i] < 0 {
				continue
			}
			if groups == nil {
				groups = map[string]groupVal{}
			}
			groups[name] = groupVal{value: v[idx[2*i]:idx[2*i+1]], serviceSide: c.field.serviceSide()}
		}
	}
	return groups, ""
}

// mismatch says why no pattern of a match condition held: the request's
// value and the patterns, quoted (escaped and bounded), e.g.
// `match.secret is "db", want "env_*"`. It is built only on a miss.
func (c cond) mismatch(v string) string {
	want := make([]string, len(c.pats))
	for i, p := range c.pats {
		want[i] = p.raw
	}
	return c.path + " " + isWant(v, want)
}

// maxPatternsShown bounds how many patterns a failed condition lists.
const maxPatternsShown = 4

// isWant renders `is "V", want "P"` or `is "V", want one of "P1", "P2"`,
// each quoted and bounded, listing at most maxPatternsShown patterns.
func isWant(v string, want []string) string {
	if len(want) == 1 {
		return fmt.Sprintf("is %s, want %s", quote(v), quote(want[0]))
	}
	q := make([]string, 0, min(len(want), maxPatternsShown)+1)
	for i, w := range want {
		if i == maxPatternsShown {
			q = append(q, fmt.Sprintf("and %d more", len(want)-i))
			break
		}
		q = append(q, quote(w))
	}
	return fmt.Sprintf("is %s, want one of %s", quote(v), strings.Join(q, ", "))
}

// first returns the first static pattern of c that matches v.
func (c cond) first(v string) (pattern, bool) {
	for _, p := range c.pats {
		if p.re != nil && p.re.MatchString(v) {
			return p, true
		}
	}
	return pattern{}, false
}

// decide applies the matched rule r to req and sets *d; the decision names
// the policy by its hash.
func (p *Policy) decide(r *rule, req *Request, groups map[string]groupVal, d *Decision) {
	*d = Decision{Rule: r.name, Account: p.account, DoNotReuse: !r.reuse, StaleIfError: r.staleIfError}
	if no := p.decideRule(r, req, groups, d); no.denies() {
		deny(r, d, no)
	}
	d.Mapping = p.hash
}

// deny makes d, a decision by rule r, a denial for no. A denial names no
// identity, whichever step refused.
func deny(r *rule, d *Decision, no refusal) {
	d.Allow = false
	d.Identity = ""
	d.Condition = oneLine(no.condition)
	d.Reason = oneLine(fmt.Sprintf("rule %q denies: %s: ", r.name, no.condition) + no.reason)
}

// decideRule resolves r's variable (or bundle), version and identity into
// d and checks r's allow conditions; a refusal that denies is why d must be
// denied.
func (p *Policy) decideRule(r *rule, req *Request, groups map[string]groupVal, d *Decision) refusal {
	if r.bundle != nil {
		b, no := p.resolveBundle(r.bundle, req, groups)
		if no.denies() {
			return no
		}
		d.Bundle = b
		return finish(r, p.identityOf(r), req, groups, d)
	}

	id, no := expand(r.variable, req, groups, true)
	if no.denies() {
		return no
	}
	if why := checkID(id); why != "" {
		return refusal{"variable", fmt.Sprintf("the resolved id %s %s", quote(id), why)}
	}
	if !underWithin(id, p.within) {
		return refusal{"within", fmt.Sprintf("the resolved id %s is not under %s", quote(id), strings.Join(p.within, ", "))}
	}
	d.Variable = id
	d.Field, d.Decode = r.shape.field, r.shape.decode

	if r.version != nil {
		text, no := expand(*r.version, req, groups, false)
		if no.denies() {
			return refusal{strings.Replace(no.condition, "variable", "version", 1), no.reason}
		}
		v, why := parseVersion(text)
		if why != "" {
			return refusal{"version", quote(text) + " " + why}
		}
		d.Version = v
	}
	return finish(r, p.identityOf(r), req, groups, d)
}

// finish fills d's identity from the identity template (nil = none) and
// checks r's allow conditions for d, whose variable or bundle is resolved;
// it allows d, or returns why it must be denied.
func finish(r *rule, identity *template, req *Request, groups map[string]groupVal, d *Decision) refusal {
	if no := resolveIdentity(identity, req, groups, d); no.denies() {
		return no
	}
	for _, c := range r.allow {
		if why := c.allows(req, groups); why != "" {
			return refusal{c.path, why}
		}
	}
	d.Allow = true
	if d.Bundle != nil {
		d.Reason = fmt.Sprintf("rule %q allows a %s bundle of %d variables", r.name, d.Bundle.Format, len(d.Bundle.Members))
	} else {
		d.Reason = fmt.Sprintf("rule %q allows variable %q", r.name, d.Variable)
	}
	if len(r.allow) > 0 {
		held := make([]string, len(r.allow))
		for i, c := range r.allow {
			held[i] = c.path
		}
		d.Reason += fmt.Sprintf(" (%s held)", oneLine(strings.Join(held, ", ")))
	}
	return refusal{}
}

// refusal is why a step of resolving a rule denies: the condition that
// failed (the Decision's Condition) and the reason. The zero refusal lets
// the request through.
type refusal struct {
	condition string
	reason    string
}

func (r refusal) denies() bool { return r.reason != "" }

// expand fills t's placeholders from the request. For the variable
// (segments true) service-side values must be a single path segment. It
// returns the text, or the refusal that denies.
func expand(t template, req *Request, groups map[string]groupVal, segments bool) (string, refusal) {
	var b strings.Builder
	for _, part := range t.parts {
		if part.ph == nil {
			b.WriteString(part.lit)
			continue
		}
		ph := *part.ph
		cond := "variable " + ph.String()
		pv, why := lookup(ph, req, groups)
		if why != "" {
			return "", refusal{cond, why}
		}
		v := pv.text
		if segments && pv.serviceSide && strings.Contains(v, "/") {
			return "", refusal{cond, fmt.Sprintf("%s is %s, which holds a /: service-side values must be a single path segment", ph, quote(v))}
		}
		if b.Len()+len(v) > MaxIDLength {
			return "", refusal{cond, fmt.Sprintf("%s is %d bytes long: the resolved id would exceed %d bytes", ph, len(v), MaxIDLength)}
		}
		b.WriteString(v)
	}
	return b.String(), refusal{}
}

// phValue is a placeholder's value in one request.
type phValue struct {
	text string
	// serviceSide: the value comes from the task (service, image, node, or
	// a group captured from one), so in a variable id it must be a single
	// path segment.
	serviceSide bool
}

// lookup returns a placeholder's value, or why it has none. Empty values
// count as missing.
// The reasons are built only when a value is missing: lookup runs on every
// GetSecret.
func lookup(ph placeholder, req *Request, groups map[string]groupVal) (phValue, string) {
	var v string
	var why string
	switch ph.kind {
	case phSecret:
		v, why = req.SecretName, "the request has no secret name"
	case phStack:
		if v = req.SecretLabels[stackLabel]; v == "" {
			why = labelMissing("secret", req.SecretLabels, stackLabel, fmt.Sprintf("%q", stackLabel),
				" (the secret was not created by docker stack deploy)")
		}
	case phSecretKey:
		v = req.SecretName
		why = "the request has no secret name"
		if stack := req.SecretLabels[stackLabel]; stack != "" {
			key, ok := strings.CutPrefix(req.SecretName, stack+"_")
			if !ok || key == "" {
				return phValue{}, fmt.Sprintf("secret name %s does not start with its stack's prefix %s", quote(req.SecretName), quote(stack+"_"))
			}
			v = key
		}
	case phSecretLabel:
		if v = req.SecretLabels[ph.arg]; v == "" {
			why = labelMissing("secret", req.SecretLabels, ph.arg, quote(ph.arg), "")
		}
	case phService:
		v, why = req.ServiceName, "the request has no service name"
	case phServiceLabel:
		if v = req.ServiceLabels[ph.arg]; v == "" {
			why = labelMissing("service", req.ServiceLabels, ph.arg, quote(ph.arg), "")
		}
	case phImage:
		v, why = req.Image, "the request has no image"
	case phNode:
		v, why = req.NodeID, "the request has no node id"
	case phMatch:
		g, ok := groups[ph.arg]
		if !ok || g.value == "" {
			return phValue{}, fmt.Sprintf("group %q captured nothing", ph.arg)
		}
		if len(g.value) > MaxValueLength {
			return phValue{}, fmt.Sprintf("group %q captured %d bytes, more than %d", ph.arg, len(g.value), MaxValueLength)
		}
		if !utf8.ValidString(g.value) {
			return phValue{}, fmt.Sprintf("group %q captured text that is not valid UTF-8", ph.arg)
		}
		return phValue{g.value, g.serviceSide}, ""
	}
	if v == "" {
		return phValue{}, why
	}
	if len(v) > MaxValueLength {
		return phValue{}, fmt.Sprintf("%s is %d bytes long, more than %d", ph, len(v), MaxValueLength)
	}
	if !utf8.ValidString(v) {
		return phValue{}, fmt.Sprintf("%s is not valid UTF-8", ph)
	}
	return phValue{v, ph.kind.serviceSide()}, ""
}

// allows returns "" when the allow condition holds for req, else why not.
// It runs on every GetSecret that reaches an allow clause, so the deny
// message is built only when the condition fails.
func (c cond) allows(req *Request, groups map[string]groupVal) string {
	what := c.field.describe(c.key)
	v, present := c.field.value(req, c.key)
	if !present {
		return what + " is missing"
	}
	for _, p := range c.pats {
		ok, why := p.matches(v, req, groups)
		if why != "" {
			return why
		}
		if ok {
			return ""
		}
	}
	want := make([]string, len(c.pats))
	for i, p := range c.pats {
		want[i] = p.raw
		if p.tmpl != nil {
			want[i] = expandForMessage(*p.tmpl, req, groups)
		}
	}
	return what + " " + isWant(v, want)
}

// matches reports whether v matches p, with p's placeholders (if any) filled
// from req; why is set when a placeholder has no value or the glob cannot be
// built. An exact pattern is compared as a string (v must be valid UTF-8 for
// that to agree with the regexp); others are compiled with the values quoted.
func (p pattern) matches(v string, req *Request, groups map[string]groupVal) (ok bool, why string) {
	if p.tmpl == nil {
		return p.re.MatchString(v), ""
	}
	var missing string
	fill := func(ph placeholder) string {
		val, why := lookup(ph, req, groups)
		if why != "" && missing == "" {
			missing = fmt.Sprintf("%s in %q has no value: %s", ph, p.raw, why)
		}
		return val.text
	}
	if p.exact && utf8.ValidString(v) {
		var b strings.Builder
		for _, part := range p.tmpl.parts {
			if part.ph != nil {
				b.WriteString(fill(*part.ph))
			} else {
				b.WriteString(part.lit)
			}
		}
		if missing != "" {
			return false, missing
		}
		return b.String() == v, ""
	}
	re, err := compileGlob(*p.tmpl, fill)
	if missing != "" {
		return false, missing
	}
	if err != nil {
		return false, fmt.Sprintf("pattern %q could not be built: %v", p.raw, err)
	}
	return re.MatchString(v), ""
}

// unescapeOutsideClass undoes the escapes globQuote adds only for [...]
// classes, for readable messages.
var unescapeOutsideClass = strings.NewReplacer(`\-`, "-", `\^`, "^", `\!`, "!")

// expandForMessage renders an allow glob with its placeholders filled in,
// for deny reasons.
func expandForMessage(t template, req *Request, groups map[string]groupVal) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ph == nil {
			b.WriteString(p.lit)
			continue
		}
		v, _ := lookup(*p.ph, req, groups)
		// Readable: - ^ ! need no escape outside a class, where
		// placeholders usually are.
		b.WriteString(unescapeOutsideClass.Replace(globQuote(v.text)))
	}
	return b.String()
}

// labelMissing says why the side's label key (shown as quoted) gave no value:
// present but empty, or absent (followed by hint).
func labelMissing(side string, labels map[string]string, key, quoted, hint string) string {
	if _, ok := labels[key]; ok {
		return fmt.Sprintf("%s label %s is empty", side, quoted)
	}
	return fmt.Sprintf("%s label %s is missing%s", side, quoted, hint)
}
