package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize is the largest mapping file Parse accepts.
const MaxFileSize = 1 << 20

// Known keys at each level of the file, in documentation order. The JSON
// Schema in docs/mapping.schema.json is tested against these.
var (
	topKeys  = []string{"version", "account", "within", "rules"}
	ruleKeys = []string{"name", "match", "allow", "variable", "bundle", "field", "decode", "version", "reuse", "stale_if_error"}
)

// Parse parses and validates a version 1 mapping file. file names it in
// problems. On failure the error is Problems, listing every problem found,
// sorted by position.
func Parse(file string, data []byte) (*Policy, error) {
	ps := &parser{file: file}
	p := ps.parse(data)
	if len(ps.problems) > 0 {
		sort.SliceStable(ps.problems, func(i, j int) bool {
			a, b := ps.problems[i], ps.problems[j]
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Col < b.Col
		})
		return nil, ps.problems
	}
	sum := sha256.Sum256(data)
	p.warnings = ps.warnings
	p.file = file
	p.hash = "sha256:" + hex.EncodeToString(sum[:])
	return p, nil
}

type parser struct {
	file     string
	problems Problems
	warnings Problems // see lint
	src      []byte   // the file, for positions inside block scalars
}

func (ps *parser) addAt(line, col int, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	if col < 1 {
		col = 1
	}
	ps.problems = append(ps.problems, Problem{File: ps.file, Line: line, Col: col, Msg: oneLine(fmt.Sprintf(format, args...))})
}

func (ps *parser) add(n *yaml.Node, format string, args ...any) {
	ps.addAt(n.Line, n.Column, format, args...)
}

// addIn reports a problem at a byte offset inside scalar n, when the
// scalar's text maps one-to-one onto the file; otherwise at n.
func (ps *parser) addIn(n *yaml.Node, off int, format string, args ...any) {
	line, col := n.Line, n.Column
	if !strings.ContainsAny(n.Value, "\n\\'\"") {
		switch n.Style {
		case 0, yaml.FlowStyle:
			col += off
		case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
			col += off + 1
		}
	}
	ps.addAt(line, col, format, args...)
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlError turns a yaml.v3 error into a problem with a position.
func (ps *parser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			line = n
		}
		msg = strings.Replace(msg, m[0]+": ", "", 1)
	}
	ps.addAt(line, 1, "YAML syntax: %s", msg)
}

func (ps *parser) parse(data []byte) *Policy {
	ps.src = data
	if len(data) > MaxFileSize {
		ps.addAt(1, 1, "the file is %d bytes, more than the %d allowed", len(data), MaxFileSize)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.addAt(1, 1, "the file is empty: a mapping file starts with \"version: 1\" and lists rules")
		} else {
			ps.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		ps.yamlError(err)
	default:
		ps.add(&extra, "a second YAML document: a mapping file holds exactly one (remove the --- separator)")
	}
	if len(doc.Content) == 0 {
		ps.add(&doc, "the file is empty: a mapping file starts with \"version: 1\" and lists rules")
		return nil
	}
	root := doc.Content[0]
	top, ok := ps.mapping(root, "the file", topKeys)
	if !ok {
		return nil
	}
	p := &Policy{}
	if v, ok := top["version"]; ok {
		if v.val.Kind != yaml.ScalarNode || v.val.Value != "1" {
			ps.add(v.val, "version must be 1 (the only format version), got %s", describeNode(v.val))
		}
	} else {
		ps.add(root, "missing version: start the file with \"version: 1\"")
	}
	if v, ok := top["account"]; ok {
		if s, ok := ps.str(v.val, "account"); ok {
			if why := checkAccount(s); why != "" {
				ps.add(v.val, "account %s", why)
			}
			p.account = s
		}
	}
	if v, ok := top["within"]; ok {
		p.within = ps.within(v.val)
	}
	v, ok := top["rules"]
	if !ok {
		ps.add(root, "missing rules: list at least one rule under \"rules:\"")
		return p
	}
	if v.val.Kind != yaml.SequenceNode {
		ps.add(v.val, "rules must be a list of rules, got %s", describeNode(v.val))
		return p
	}
	if len(v.val.Content) == 0 {
		ps.add(v.val, "rules is empty: with no rules every request is denied; add a rule")
		return p
	}
	seen := map[string]int{}
	for _, rn := range v.val.Content {
		if r := ps.rule(rn, p.within, seen); r != nil {
			p.rules = append(p.rules, r)
		}
	}
	return p
}

// entry is a key and its value in a YAML mapping.
type entry struct{ key, val *yaml.Node }

// mapping checks that n is a mapping with known, unique, scalar keys, and
// returns its entries by key. known nil accepts any key (label maps).
func (ps *parser) mapping(n *yaml.Node, what string, known []string) (map[string]entry, bool) {
	if n.Kind == yaml.AliasNode {
		ps.add(n, "%s: anchors and aliases (*%s) are not supported; write the value out", what, n.Value)
		return nil, false
	}
	if n.Kind != yaml.MappingNode {
		ps.add(n, "%s must be a mapping (key: value lines), got %s", what, describeNode(n))
		return nil, false
	}
	out := make(map[string]entry, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			ps.add(k, "%s: keys must be plain strings", what)
			continue
		}
		if v.Kind == yaml.AliasNode {
			ps.add(v, "%s: anchors and aliases (*%s) are not supported; write the value out", what, v.Value)
			continue
		}
		if prev, dup := out[k.Value]; dup {
			ps.add(k, "%s: duplicate key %q (first at line %d)", what, k.Value, prev.key.Line)
			continue
		}
		if known != nil && !slices.Contains(known, k.Value) {
			ps.add(k, "%s", unknownKey(what, k.Value, known))
			continue
		}
		out[k.Value] = entry{k, v}
	}
	return out, true
}

func unknownKey(what, key string, known []string) string {
	msg := fmt.Sprintf("unknown key %q in %s", key, what)
	if s := suggest(key, known); s != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", s)
	}
	if strings.HasPrefix(what, "rule") && slices.Contains(conditionKeys, key) {
		return msg + " (conditions go under match: or allow:)"
	}
	return msg + "; known keys: " + strings.Join(known, ", ")
}

// str returns the value of a scalar string node.
func (ps *parser) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		ps.add(n, "%s must be a string, got %s", what, describeNode(n))
		return "", false
	}
	if n.Tag == "!!null" {
		ps.add(n, "%s is empty", what)
		return "", false
	}
	return n.Value, true
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

// within parses the list of branches.
func (ps *parser) within(n *yaml.Node) []string {
	if n.Kind != yaml.SequenceNode {
		ps.add(n, "within must be a list of branches such as [apps/], got %s", describeNode(n))
		return nil
	}
	if len(n.Content) == 0 {
		ps.add(n, "within is empty, which admits no variable: list branches such as [apps/], or remove within")
		return nil
	}
	var out []string
	for _, e := range n.Content {
		s, ok := ps.str(e, "a within entry")
		if !ok {
			continue
		}
		if !strings.HasSuffix(s, "/") {
			ps.add(e, "within entry %q must end with / (did you mean %q?)", s, s+"/")
			continue
		}
		if why := checkID(strings.TrimSuffix(s, "/")); why != "" {
			ps.add(e, "within entry %q is not a branch: it %s", s, why)
			continue
		}
		out = append(out, s)
	}
	return out
}

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
	if v, ok := m["reuse"]; ok {
		if v.val.Kind != yaml.ScalarNode || v.val.Tag != "!!bool" {
			ps.add(v.val, "reuse must be true or false, got %s", describeNode(v.val))
		} else {
			r.reuse = v.val.Value == "true"
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

// parseGlobTemplate is parseTemplate for globs: "\c" is kept as an escape,
// so \{ and \} are literal braces.
func parseGlobTemplate(s string) (template, []templateError) {
	var masked strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '}' || s[i+1] == '\\') {
			masked.WriteString("\x00\x00")
			i++
			continue
		}
		masked.WriteByte(s[i])
	}
	t, errs := parseTemplate(masked.String())
	// Put the escaped text back into the literal parts.
	for i := range t.parts {
		if t.parts[i].ph == nil {
			off := t.parts[i].off
			t.parts[i].lit = s[off : off+len(t.parts[i].lit)]
		}
	}
	t.raw = s
	return t, errs
}

// literalOnly reports whether t's literal parts hold no glob syntax.
func literalOnly(t template) bool {
	for _, p := range t.parts {
		if p.ph == nil && strings.ContainsAny(p.lit, `*?[]\`) {
			return false
		}
	}
	return true
}

// compileGlob builds the glob from t, with each placeholder replaced by
// value(ph) quoted, and compiles it.
func compileGlob(t template, value func(placeholder) string) (*regexp.Regexp, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ph != nil {
			b.WriteString(globQuote(value(*p.ph)))
		} else {
			b.WriteString(p.lit)
		}
	}
	expr, err := globToRegexp(b.String())
	if err != nil {
		return nil, err
	}
	return regexp.Compile(expr)
}

// variable parses the variable template and checks what can be checked
// before a request arrives.
func (ps *parser) variable(n *yaml.Node, s string, within []string, groups map[string]groupDef) template {
	t, terrs := parseTemplate(s)
	for _, te := range terrs {
		ps.addIn(n, te.off, "variable: %s", te.msg)
	}
	bad := len(terrs) > 0
	for _, p := range t.parts {
		if p.ph == nil {
			if i, why := badChar(p.lit); why != "" {
				ps.addIn(n, p.off+i, "variable %q %s", s, why)
				bad = true
			}
			continue
		}
		if p.ph.kind == phMatch {
			if _, ok := groups[p.ph.arg]; !ok {
				ps.addIn(n, p.off, "variable: %s: %s", p.ph, noGroupMsg(p.ph.arg, groups))
				bad = true
			}
		}
	}
	if bad {
		return t
	}
	var sample strings.Builder
	for _, p := range t.parts {
		if p.ph != nil {
			sample.WriteString("x")
		} else {
			sample.WriteString(p.lit)
		}
	}
	if why := checkID(sample.String()); why != "" && !strings.Contains(why, "bytes long") {
		ps.add(n, "variable %q can never be a valid id: it %s", s, why)
		return t
	}
	if len(within) > 0 {
		prefix := t.prefix()
		ok := false
		for _, w := range within {
			if strings.HasPrefix(prefix, w) || strings.HasPrefix(w, prefix) {
				ok = true
			}
		}
		if !ok {
			ps.add(n, "variable %q always lies outside within (%s): every request would be denied", s, strings.Join(within, ", "))
		}
	}
	return t
}

var digitsRE = regexp.MustCompile(`\A[0-9]*\z`)

// version parses the version template: digits and placeholders that must
// expand to a positive integer.
func (ps *parser) version(n *yaml.Node, s string, groups map[string]groupDef) *template {
	t, terrs := parseTemplate(s)
	for _, te := range terrs {
		ps.addIn(n, te.off, "version: %s", te.msg)
	}
	if len(terrs) > 0 {
		return nil
	}
	for _, p := range t.parts {
		if p.ph == nil {
			if !digitsRE.MatchString(p.lit) {
				ps.addIn(n, p.off, "version %q: outside placeholders a version holds only digits", s)
				return nil
			}
		} else if p.ph.kind == phMatch {
			if _, ok := groups[p.ph.arg]; !ok {
				ps.addIn(n, p.off, "version: %s: %s", p.ph, noGroupMsg(p.ph.arg, groups))
				return nil
			}
		}
	}
	if len(t.placeholders()) == 0 {
		if _, err := parseVersion(s); err != "" {
			ps.add(n, "version %q %s", s, err)
			return nil
		}
	}
	return &t
}

// parseVersion returns the version number or why the text is not one.
func parseVersion(s string) (int, string) {
	if s == "" || !digitsRE.MatchString(s) || len(s) > 9 {
		return 0, "is not a positive integer (at most 9 digits)"
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, "is not a positive integer (at most 9 digits)"
	}
	return v, ""
}

var accountRE = regexp.MustCompile(`\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\z`)

func checkAccount(s string) string {
	if !accountRE.MatchString(s) {
		return fmt.Sprintf("%q: use letters, digits, '.', '_' or '-' (at most 128), or remove account to use the plugin's CONJUR_ACCOUNT", s)
	}
	return ""
}

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo, else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), c)
		if d < bestD && d <= max(1, len(c)/3) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
