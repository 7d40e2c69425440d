package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// A rule of the mapping file: its name, match and allow conditions and their
// patterns (globs and re:, with the named groups a match defines).

var ruleNameRE = regexp.MustCompile(`\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\z`)

func (ps *parser) rule(n *yaml.Node, within []string, seen map[string]int) *rule {
	m, ok := ps.mapping(n, "rule", ruleKeys)
	if !ok {
		return nil
	}
	r := &rule{line: n.Line}
	what := "rule"
	if v, ok := m["name"]; ok {
		if s, ok := ps.str(v.val, "name"); ok {
			switch {
			case !ruleNameRE.MatchString(s):
				ps.add(v.val, "rule name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", s)
			case seen[s] != 0:
				ps.add(v.val, "duplicate rule name %q (first used at line %d): rule names must be unique", s, seen[s])
			default:
				seen[s] = v.val.Line
			}
			r.name = s
			what = fmt.Sprintf("rule %q", s)
		}
	} else {
		ps.add(n, "rule without a name: add \"name: ...\" (names appear in logs, audit and explain)")
	}
	groups := map[string]groupDef{}
	if v, ok := m["match"]; ok {
		r.match = ps.conds(v.val, what, "match", groups, nil)
	} else {
		ps.add(n, "%s has no match: add match conditions, or \"match: {}\" to match every request", what)
	}
	if v, ok := m["allow"]; ok {
		r.allow = ps.conds(v.val, what, "allow", nil, groups)
	}
	ps.output(n, m, r, what, within, groups)
	if v, ok := m["version"]; ok && r.bundle == nil {
		if s, ok := ps.str(v.val, "version"); ok {
			r.version = ps.version(v.val, s, groups)
		}
	}
	if v, ok := m["identity"]; ok {
		r.identity = ps.identity(v.val, what, groups)
	}
	if v, ok := m["reuse"]; ok {
		if v.val.Kind != yaml.ScalarNode || v.val.Tag != "!!bool" {
			ps.add(v.val, "reuse must be true or false, got %s", describeNode(v.val))
		} else {
			r.reuse = v.val.Value == "true"
			r.reuseAt = [2]int{v.val.Line, v.val.Column}
		}
	}
	if v, ok := m["stale_if_error"]; ok {
		r.staleIfError = ps.staleIfError(v.val)
	}
	ps.lint(n, m, r, what, groups)
	return r
}

// groupDef is a named group of a match re: pattern.
type groupDef struct {
	serviceSide bool
	line        int
}

// conds parses match or allow. defs collects named groups (match); refs
// checks {match:NAME} references against them (allow).
func (ps *parser) conds(n *yaml.Node, what, section string, defs, refs map[string]groupDef) []cond {
	m, ok := ps.mapping(n, what+" "+section, conditionKeys)
	if !ok {
		return nil
	}
	var out []cond
	for _, k := range n.Content { // file order
		e, ok := m[k.Value]
		if !ok || e.key != k {
			continue
		}
		f := fieldByKey[k.Value]
		if !f.labels() {
			c := cond{path: section + "." + f.key(), field: f}
			c.pats = ps.patterns(e.val, c.path, section, f, defs, refs)
			out = append(out, c)
			continue
		}
		lm, ok := ps.mapping(e.val, section+"."+f.key(), nil)
		if !ok {
			continue
		}
		if len(lm) == 0 {
			ps.add(e.val, "%s.%s is empty: name at least one label, or remove the key", section, f.key())
		}
		for _, lk := range e.val.Content {
			le, ok := lm[lk.Value]
			if !ok || le.key != lk {
				continue
			}
			if lk.Value == "" {
				ps.add(lk, "%s.%s: a label key cannot be empty", section, f.key())
				continue
			}
			c := cond{path: fmt.Sprintf("%s.%s[%s]", section, f.key(), oneLine(lk.Value)), field: f, key: lk.Value}
			c.pats = ps.patterns(le.val, c.path, section, f, defs, refs)
			out = append(out, c)
		}
	}
	return out
}

// patterns parses a pattern or a list of patterns (any one must match).
func (ps *parser) patterns(n *yaml.Node, path, section string, f field, defs, refs map[string]groupDef) []pattern {
	var nodes []*yaml.Node
	switch n.Kind {
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			ps.add(n, "%s is an empty list, which nothing matches: give at least one pattern", path)
			return nil
		}
		nodes = n.Content
	default:
		nodes = []*yaml.Node{n}
	}
	var out []pattern
	for _, pn := range nodes {
		s, ok := ps.str(pn, path)
		if !ok {
			continue
		}
		if p, ok := ps.pattern(pn, s, path, section, f, defs, refs); ok {
			out = append(out, p)
		}
	}
	return out
}

// placeholderNameRE spots placeholder-looking text in re: patterns, where
// placeholders are not expanded.
var placeholderNameRE = regexp.MustCompile(`\{(secret|secret_key|stack|secret_label|service|service_label|image|node|match)(:[^{}]*)?\}`)

func (ps *parser) pattern(n *yaml.Node, s, path, section string, f field, defs, refs map[string]groupDef) (pattern, bool) {
	if expr, isRe := strings.CutPrefix(s, "re:"); isRe {
		if expr == "" {
			ps.addIn(n, 0, "%s: empty re: pattern; write re:<RE2 expression>", path)
			return pattern{}, false
		}
		if loc := placeholderNameRE.FindStringIndex(expr); loc != nil {
			ps.addIn(n, 3+loc[0], "%s: placeholders are not expanded in re: patterns; use a glob to compare with %s", path, expr[loc[0]:loc[1]])
			return pattern{}, false
		}
		_, err := regexp.Compile(expr)
		var re *regexp.Regexp
		if err == nil {
			re, err = regexp.Compile(`\A(?:` + expr + `)\z`)
		}
		if err != nil {
			ps.addIn(n, 3, "%s: bad re: pattern: %s", path, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			return pattern{}, false
		}
		for _, g := range re.SubexpNames() {
			if g == "" {
				continue
			}
			if defs == nil {
				continue // groups in allow patterns are not referenced
			}
			if prev, dup := defs[g]; dup {
				ps.add(n, "%s: group %q is already defined (line %d): group names must be unique within a rule's match", path, g, prev.line)
				continue
			}
			defs[g] = groupDef{serviceSide: f.serviceSide(), line: n.Line}
		}
		return pattern{raw: s, re: re}, true
	}
	t, terrs := parseGlobTemplate(s)
	for _, te := range terrs {
		ps.addIn(n, te.off, "%s: %s", path, te.msg)
	}
	if len(terrs) > 0 {
		return pattern{}, false
	}
	phs := t.placeholders()
	if section == "match" && len(phs) > 0 {
		ps.add(n, "%s: placeholders such as %s are expanded only in allow, variable and version; in match use a glob or re: (write \\{ for a literal brace)", path, phs[0])
		return pattern{}, false
	}
	for _, ph := range phs {
		if ph.kind == phMatch {
			if _, ok := refs[ph.arg]; !ok {
				ps.add(n, "%s: %s: %s", path, ph, noGroupMsg(ph.arg, refs))
				return pattern{}, false
			}
		}
	}
	// Compile with every placeholder standing for a literal to check the
	// glob's syntax; the real values are quoted per request.
	re, err := compileGlob(t, func(placeholder) string { return "x" })
	if err != nil {
		ps.add(n, "%s: bad glob: %v", path, err)
		return pattern{}, false
	}
	if len(phs) > 0 {
		return pattern{raw: s, tmpl: &t, exact: literalOnly(t)}, true
	}
	return pattern{raw: s, re: re}, true
}

func noGroupMsg(name string, defs map[string]groupDef) string {
	names := make([]string, 0, len(defs))
	for g := range defs {
		names = append(names, g)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return fmt.Sprintf("no re: pattern in this rule's match defines a group named %q; define one with re:(?P<%s>...)", name, name)
	}
	msg := fmt.Sprintf("no re: pattern in this rule's match defines a group named %q (groups: %s)", name, strings.Join(names, ", "))
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean {match:%s}?", s)
	}
	return msg
}
