package policy

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	texttemplate "text/template"
	"text/template/parse"

	"gopkg.in/yaml.v3"
)

// Keys of a bundle and of a member written as a mapping, in documentation
// order. The JSON Schema in docs/mapping.schema.json is tested against these.
var (
	bundleKeys = []string{"format", "variables", "template"}
	memberKeys = []string{"variable", "version", "field", "decode"}
)

// Bundle formats.
const (
	FormatJSON     = "json"
	FormatYAML     = "yaml"
	FormatDotenv   = "dotenv"
	FormatTemplate = "template"
)

// DecodeBase64 is the only decode a rule or member may ask for.
const DecodeBase64 = "base64"

// MaxMembers bounds the variables of one bundle.
const MaxMembers = 64

// maxFieldLength bounds a field name, in bytes.
const maxFieldLength = 256

// memberNameRE is what a member name may be: a valid environment variable
// name of at most 64 characters, so every format can use it as written.
var memberNameRE = regexp.MustCompile(`\A[A-Za-z_][A-Za-z0-9_]{0,63}\z`)

// shape is how one fetched value is turned into what is handed out.
type shape struct {
	field  string // "" = the whole value
	decode string // "" or DecodeBase64
}

// bundleSpec is a parsed bundle.
type bundleSpec struct {
	format  string
	members []memberSpec // sorted by name
	tmpl    *texttemplate.Template
}

// memberSpec is one parsed bundle member.
type memberSpec struct {
	name     string
	variable template
	version  *template
	shape    shape
}

// output parses what a rule hands out: variable (with field and decode) or
// bundle. Exactly one of the two must be given.
func (ps *parser) output(n *yaml.Node, m map[string]entry, r *rule, what string, within []string, groups map[string]groupDef) {
	v, hasVar := m["variable"]
	b, hasBundle := m["bundle"]
	switch {
	case hasVar && hasBundle:
		ps.add(b.key, "%s has both variable and bundle: a rule hands out one variable or a bundle of several; remove one", what)
		return
	case hasBundle:
		for _, k := range []string{"field", "decode", "version"} {
			if e, ok := m[k]; ok {
				ps.add(e.key, "%s: %s belongs to a single variable; in a bundle give it per member, e.g. NAME: {variable: \"...\", %s: ...}", what, k, k)
			}
		}
		r.bundle = ps.bundle(b.val, what, within, groups)
		return
	case hasVar:
		if s, ok := ps.str(v.val, "variable"); ok {
			r.variable = ps.variable(v.val, s, within, groups)
		}
	default:
		ps.add(n, "%s has no variable: add \"variable: ...\", e.g. \"apps/{stack}/{secret_key}\"", what)
	}
	r.shape = ps.shape(m, "")
}

// shape parses field and decode from m; prefix names the member in messages.
func (ps *parser) shape(m map[string]entry, prefix string) shape {
	var sh shape
	if e, ok := m["field"]; ok {
		if s, ok := ps.str(e.val, prefix+"field"); ok {
			switch {
			case s == "":
				ps.add(e.val, "%sfield is empty: name a top-level member of the JSON value, or remove field", prefix)
			case len(s) > maxFieldLength:
				ps.add(e.val, "%sfield is %d bytes long, more than %d", prefix, len(s), maxFieldLength)
			default:
				sh.field = s
			}
		}
	}
	if e, ok := m["decode"]; ok {
		if s, ok := ps.str(e.val, prefix+"decode"); ok {
			if s != DecodeBase64 {
				ps.add(e.val, "%sdecode %q is not supported: the only decode is %q (standard base64, padding optional)", prefix, s, DecodeBase64)
			} else {
				sh.decode = s
			}
		}
	}
	return sh
}

// bundle parses a rule's bundle.
func (ps *parser) bundle(n *yaml.Node, what string, within []string, groups map[string]groupDef) *bundleSpec {
	m, ok := ps.mapping(n, what+" bundle", bundleKeys)
	if !ok {
		return nil
	}
	b := &bundleSpec{}
	bad := false
	if e, ok := m["format"]; ok {
		if s, ok := ps.str(e.val, "bundle format"); ok {
			if _, known := formatNamed(s); known {
				b.format = s
			} else {
				msg := fmt.Sprintf("bundle format %q is not one of %s", s, strings.Join(formatNames(), ", "))
				if sug := suggest(s, formatNames()); sug != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", sug)
				}
				ps.add(e.val, "%s", msg)
				bad = true
			}
		} else {
			bad = true
		}
	} else {
		ps.add(n, "%s bundle has no format: add \"format: json\" (or %s)", what, strings.Join(formatNames()[1:], ", "))
		bad = true
	}
	if e, ok := m["variables"]; ok {
		b.members = ps.members(e.val, within, groups)
		if b.members == nil {
			bad = true
		}
	} else {
		ps.add(n, "%s bundle has no variables: list them as NAME: \"variable id\"", what)
		bad = true
	}
	t, hasTmpl := m["template"]
	switch {
	case b.format == FormatTemplate && !hasTmpl:
		ps.add(n, "%s bundle has format template but no template: add \"template: ...\" (Go text/template over the member names)", what)
		bad = true
	case hasTmpl && b.format != "" && b.format != FormatTemplate:
		ps.add(t.key, "bundle template is used only with \"format: template\" (this bundle's format is %s): remove it or change the format", b.format)
		bad = true
	case hasTmpl:
		if s, ok := ps.str(t.val, "bundle template"); ok {
			names := make([]string, len(b.members))
			for i, mb := range b.members {
				names[i] = mb.name
			}
			b.tmpl = ps.bundleTemplate(t.val, s, names)
		}
		if b.tmpl == nil {
			bad = true
		}
	}
	if bad {
		return nil
	}
	return b
}

// members parses a bundle's variables: NAME: "id template", or NAME: a
// mapping of memberKeys. It returns them sorted by name, nil on any problem.
func (ps *parser) members(n *yaml.Node, within []string, groups map[string]groupDef) []memberSpec {
	m, ok := ps.mapping(n, "bundle variables", nil)
	if !ok {
		return nil
	}
	if len(m) == 0 {
		ps.add(n, "bundle variables is empty: list at least one member as NAME: \"variable id\"")
		return nil
	}
	if len(m) > MaxMembers {
		ps.add(n, "bundle variables has %d members, more than %d: split the secret", len(m), MaxMembers)
		return nil
	}
	before := len(ps.problems)
	out := make([]memberSpec, 0, len(m))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		e, ok := m[k.Value]
		if !ok || e.key != k {
			continue
		}
		name := k.Value
		if !memberNameRE.MatchString(name) {
			ps.add(k, "bundle member name %q: use 1 to 64 letters, digits or '_', not starting with a digit (it must be a valid environment variable name)", name)
			continue
		}
		out = append(out, ps.member(name, e.val, within, groups))
	}
	if len(ps.problems) > before {
		return nil
	}
	slices.SortFunc(out, func(a, b memberSpec) int { return strings.Compare(a.name, b.name) })
	return out
}

// member parses one member's value.
func (ps *parser) member(name string, n *yaml.Node, within []string, groups map[string]groupDef) memberSpec {
	mb := memberSpec{name: name}
	prefix := fmt.Sprintf("bundle member %q: ", name)
	if n.Kind == yaml.ScalarNode {
		if s, ok := ps.str(n, prefix+"variable"); ok {
			mb.variable = ps.variable(n, s, within, groups)
		}
		return mb
	}
	m, ok := ps.mapping(n, fmt.Sprintf("bundle member %q", name), memberKeys)
	if !ok {
		return mb
	}
	if e, ok := m["variable"]; ok {
		if s, ok := ps.str(e.val, prefix+"variable"); ok {
			mb.variable = ps.variable(e.val, s, within, groups)
		}
	} else {
		ps.add(n, "%sno variable: add \"variable: ...\"", prefix)
	}
	if e, ok := m["version"]; ok {
		if s, ok := ps.str(e.val, prefix+"version"); ok {
			mb.version = ps.version(e.val, s, groups)
		}
	}
	mb.shape = ps.shape(m, prefix)
	return mb
}

var templateErrLineRE = regexp.MustCompile(`^template: [^:]*:(\d+):(?:(\d+):)? ?(.*)$`)

// maxTemplateProblems bounds the problems reported for one template.
const maxTemplateProblems = 10

// tmplSite is a template being checked: the scalar that holds it, its text,
// where each of its lines starts, and the indentation of a literal block.
type tmplSite struct {
	n        *yaml.Node
	src      string
	lines    []int // byte offset of the start of each line of src
	indent   int
	members  []string
	problems int
}

// bundleTemplate parses a format: template bundle's template and checks
// that it names only members and uses no construct beyond a value's text.
func (ps *parser) bundleTemplate(n *yaml.Node, src string, members []string) *texttemplate.Template {
	site := &tmplSite{n: n, src: src, lines: []int{0}, members: members}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			site.lines = append(site.lines, i+1)
		}
	}
	if n.Style&yaml.LiteralStyle != 0 {
		site.indent = ps.indentOf(n.Line + 1)
	}
	t, err := newBundleTemplate().Parse(src)
	if err != nil {
		msg := err.Error()
		off := 0
		if m := templateErrLineRE.FindStringSubmatch(msg); m != nil {
			if line, convErr := strconv.Atoi(m[1]); convErr == nil && line >= 1 && line <= len(site.lines) {
				off = site.lines[line-1]
			}
			msg = m[3]
		}
		ps.addTmpl(site, off, "bundle template does not parse: %s", msg)
		return nil
	}
	if len(t.Templates()) > 1 {
		ps.add(n, "bundle template: define and block are not supported: write one template")
		return nil
	}
	if t.Tree != nil && t.Tree.Root != nil {
		ps.walkTemplate(site, t.Tree.Root)
	}
	if site.problems > 0 {
		return nil
	}
	return t
}

// walkTemplate reports references to names that are not members, and the
// constructs bundle templates leave out (range, template).
func (ps *parser) walkTemplate(site *tmplSite, node parse.Node) {
	if site.problems >= maxTemplateProblems {
		return
	}
	switch x := node.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			ps.walkTemplate(site, c)
		}
	case *parse.ActionNode:
		ps.walkTemplate(site, x.Pipe)
	case *parse.PipeNode:
		if x == nil {
			return
		}
		for _, c := range x.Cmds {
			ps.walkTemplate(site, c)
		}
	case *parse.CommandNode:
		for _, a := range x.Args {
			ps.walkTemplate(site, a)
		}
	case *parse.IfNode:
		ps.walkBranch(site, &x.BranchNode)
	case *parse.WithNode:
		ps.walkBranch(site, &x.BranchNode)
	case *parse.RangeNode:
		ps.addTmpl(site, int(x.Position()), "bundle template: range is not supported (every member is a string); name members directly")
	case *parse.TemplateNode:
		ps.addTmpl(site, int(x.Position()), "bundle template: {{template}} is not supported: write one template")
	case *parse.FieldNode:
		ps.checkMemberRef(site, int(x.Position()), x.Ident)
	case *parse.VariableNode:
		if len(x.Ident) > 1 && x.Ident[0] == "$" {
			ps.checkMemberRef(site, int(x.Position()), x.Ident[1:])
		}
	case *parse.ChainNode:
		ps.walkTemplate(site, x.Node)
		ps.addTmpl(site, int(x.Position()), "bundle template: members are strings and have no fields (%s)", x.String())
	}
}

func (ps *parser) walkBranch(site *tmplSite, b *parse.BranchNode) {
	ps.walkTemplate(site, b.Pipe)
	ps.walkTemplate(site, b.List)
	ps.walkTemplate(site, b.ElseList)
}

// checkMemberRef checks a .name (or $.name) reference.
func (ps *parser) checkMemberRef(site *tmplSite, off int, ident []string) {
	name := ident[0]
	if !slices.Contains(site.members, name) {
		msg := fmt.Sprintf("bundle template names .%s, which is not a member of variables (members: %s)", name, strings.Join(site.members, ", "))
		if s := suggest(name, site.members); s != "" {
			msg += fmt.Sprintf("; did you mean .%s?", s)
		}
		ps.addTmpl(site, off, "%s", msg)
		return
	}
	if len(ident) > 1 {
		ps.addTmpl(site, off, "bundle template: .%s is a string and has no field %s", name, ident[1])
	}
}

// addTmpl reports a problem at byte offset off of the template. Offsets map
// onto the file for a literal block (|) and for a one-line scalar without
// escapes; otherwise the problem is put at the scalar.
func (ps *parser) addTmpl(site *tmplSite, off int, format string, args ...any) {
	site.problems++
	if site.problems > maxTemplateProblems {
		return
	}
	if off < 0 || off > len(site.src) {
		off = 0
	}
	n := site.n
	if n.Style&yaml.LiteralStyle != 0 {
		// The block's content starts on the line after the indicator,
		// indented as its first line is.
		line := sort.SearchInts(site.lines, off+1) - 1
		ps.addAt(n.Line+1+line, site.indent+1+off-site.lines[line], format, args...)
		return
	}
	if len(site.lines) > 1 {
		ps.add(n, format, args...)
		return
	}
	ps.addIn(n, off, format, args...)
}

// indentOf returns how many spaces start line (1-based) of the file.
func (ps *parser) indentOf(line int) int {
	rest := ps.src
	for i := 1; i < line && len(rest) > 0; i++ {
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return 0
		}
		rest = rest[j+1:]
	}
	return len(rest) - len(bytes.TrimLeft(rest, " "))
}
