package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Where a rule's answers may point: the file's within branches and
// account, and a rule's variable and version templates, checked before any
// request arrives.

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
