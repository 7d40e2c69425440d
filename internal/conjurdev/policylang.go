package conjurdev

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// The subset of the Conjur policy language the dev server understands:
// records (!policy with body, !user, !host, !group, !layer, !variable,
// !webservice) as a tagged scalar id or a mapping with id, owner,
// annotations (and kind/mime_type for variables); statements !grant and
// !revoke (role, member/members), !permit and !deny (role/roles,
// privilege/privileges, resource/resources) and !delete (record). Lists may
// nest and be shared through YAML anchors and aliases. Anything else is
// rejected with its line and column, as Conjur does.

// conjurPolicyError is a syntax or semantic error in a policy document.
type conjurPolicyError struct {
	Line, Col int
	Msg       string
}

func (e *conjurPolicyError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("Error at line %d, column %d in policy: %s", e.Line, e.Col, e.Msg)
	}
	return "Error in policy: " + e.Msg
}

func errAt(n *yaml.Node, format string, args ...any) *conjurPolicyError {
	e := &conjurPolicyError{Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}

// ref names a record: kind plus an id relative to the enclosing policy (a
// leading "/" makes it absolute).
type ref struct {
	kind, id  string
	line, col int
}

type stmtOp int

const (
	opRecord stmtOp = iota + 1
	opGrant
	opRevoke
	opPermit
	opDeny
	opDelete
)

type kv struct{ key, value string }

// stmt is one parsed policy statement.
type stmt struct {
	op        stmtOp
	line, col int

	// opRecord
	kind, id    string
	owner       *ref
	annotations []kv
	body        []stmt // policies

	// opGrant, opRevoke: roles are granted to members
	// opPermit, opDeny: roles get privileges on resources
	roles      []ref
	members    []ref
	privileges []string
	resources  []ref
}

// maxPolicyDepth bounds nesting (policies within policies, lists within
// lists, aliases) so hostile input cannot exhaust the stack.
const maxPolicyDepth = 64

// parseConjurPolicy parses a policy document. An empty document, a comment-only
// one and `--- []` are valid and declare nothing.
func parseConjurPolicy(data []byte) ([]stmt, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &conjurPolicyError{Msg: yamlMsg(err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.SequenceNode {
		return nil, errAt(root, "policy must be a sequence of records and statements")
	}
	p := &parser{}
	return p.list(root, 0)
}

func yamlMsg(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

type parser struct {
	aliases int // alias expansions, bounded against alias bombs
	nodes   int // statements and references produced, bounded likewise
}

const (
	maxAliasExpansions = 10000
	maxPolicyNodes     = 100000
)

// count charges one produced statement or reference against the budget.
func (p *parser) count(n *yaml.Node) error {
	p.nodes++
	if p.nodes > maxPolicyNodes {
		return errAt(n, "policy too large: more than %d records and references (after expanding aliases)", maxPolicyNodes)
	}
	return nil
}

func (p *parser) deref(n *yaml.Node) (*yaml.Node, error) {
	for n.Kind == yaml.AliasNode {
		p.aliases++
		if p.aliases > maxAliasExpansions {
			return nil, errAt(n, "too many alias expansions")
		}
		if n.Alias == nil {
			return nil, errAt(n, "unknown alias")
		}
		n = n.Alias
	}
	return n, nil
}

// list parses a body: a sequence of statements, where nested sequences are
// flattened.
func (p *parser) list(n *yaml.Node, depth int) ([]stmt, error) {
	if depth > maxPolicyDepth {
		return nil, errAt(n, "policy nested too deeply")
	}
	var out []stmt
	for _, item := range n.Content {
		item, err := p.deref(item)
		if err != nil {
			return nil, err
		}
		if item.Kind == yaml.SequenceNode {
			sub, err := p.list(item, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		if err := p.count(item); err != nil {
			return nil, err
		}
		s, err := p.statement(item, depth)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func tagName(n *yaml.Node) string {
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return n.Tag[1:]
	}
	return ""
}

func (p *parser) statement(n *yaml.Node, depth int) (stmt, error) {
	tag := tagName(n)
	switch {
	case tag == "":
		return stmt{}, errAt(n, "expected a tagged record or statement such as !variable or !permit")
	case recordKinds[tag]:
		return p.record(n, tag, depth)
	case tag == "grant" || tag == "revoke":
		return p.grant(n, tag)
	case tag == "permit" || tag == "deny":
		return p.permit(n, tag)
	case tag == "delete":
		return p.del(n)
	default:
		return stmt{}, errAt(n, "Unrecognized data type '!%s'", tag)
	}
}

// fields returns a mapping's keys and values, rejecting duplicate keys and
// keys outside allowed.
func (p *parser) fields(n *yaml.Node, what string, allowed ...string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, "!%s must be a mapping", what)
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k, "!%s: attribute names must be plain text", what)
		}
		ok := false
		for _, a := range allowed {
			if k.Value == a {
				ok = true
				break
			}
		}
		if !ok {
			return nil, errAt(k, "!%s has no attribute '%s'", what, k.Value)
		}
		if _, dup := out[k.Value]; dup {
			return nil, errAt(k, "!%s: attribute '%s' given twice", what, k.Value)
		}
		v, err := p.deref(v)
		if err != nil {
			return nil, err
		}
		out[k.Value] = v
	}
	return out, nil
}

func scalarText(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errAt(n, "%s must be a single value", what)
	}
	if n.Tag == "!!null" {
		return "", nil
	}
	return n.Value, nil
}

func checkID(n *yaml.Node, id string) error {
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errAt(n, "id %q has a control character", id)
		}
	}
	if strings.Contains(id, ":") {
		// Conjur ids may not hold the account/kind separator.
		return errAt(n, "id %q must not contain ':'", id)
	}
	for _, seg := range strings.Split(strings.TrimPrefix(id, "/"), "/") {
		if id != "" && (seg == "" || seg == "." || seg == "..") {
			return errAt(n, "id %q has an empty, '.' or '..' segment", id)
		}
	}
	return nil
}

func (p *parser) record(n *yaml.Node, kind string, depth int) (stmt, error) {
	s := stmt{op: opRecord, kind: kind, line: n.Line, col: n.Column}
	switch n.Kind {
	case yaml.ScalarNode:
		id, err := scalarText(n, "id")
		if err != nil {
			return stmt{}, err
		}
		s.id = id
	case yaml.MappingNode:
		allowed := []string{"id", "owner", "annotations"}
		switch kind {
		case "policy":
			allowed = append(allowed, "body")
		case "variable":
			allowed = append(allowed, "kind", "mime_type")
		case "host":
			allowed = append(allowed, "restricted_to")
		case "user":
			allowed = append(allowed, "restricted_to", "public_keys", "uidnumber")
		case "group":
			allowed = append(allowed, "gidnumber")
		}
		f, err := p.fields(n, kind, allowed...)
		if err != nil {
			return stmt{}, err
		}
		if v, ok := f["id"]; ok {
			if s.id, err = scalarText(v, "id"); err != nil {
				return stmt{}, err
			}
		}
		if v, ok := f["owner"]; ok {
			r, err := p.ref(v)
			if err != nil {
				return stmt{}, err
			}
			if !roleKinds[r.kind] {
				return stmt{}, errAt(v, "owner must be a role (user, host, group, layer or policy), not a %s", r.kind)
			}
			s.owner = &r
		}
		if v, ok := f["annotations"]; ok {
			if s.annotations, err = p.annotations(v); err != nil {
				return stmt{}, err
			}
		}
		for _, key := range []string{"kind", "mime_type"} {
			if v, ok := f[key]; ok {
				text, err := scalarText(v, key)
				if err != nil {
					return stmt{}, err
				}
				s.annotations = append(s.annotations, kv{"conjur/" + key, text})
			}
		}
		if v, ok := f["body"]; ok {
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				break
			}
			if v.Kind != yaml.SequenceNode {
				return stmt{}, errAt(v, "body must be a sequence of records and statements")
			}
			if s.body, err = p.list(v, depth+1); err != nil {
				return stmt{}, err
			}
		}
	default:
		return stmt{}, errAt(n, "!%s must be an id or a mapping", kind)
	}
	if s.id == "" && kind != "webservice" && kind != "policy" {
		// Only a policy's own webservice (and layer/host in Conjur's
		// grammar, rarely) may omit the id; require it for the rest.
		if kind != "layer" {
			return stmt{}, errAt(n, "!%s needs an id", kind)
		}
	}
	if kind == "policy" && s.id == "" {
		return stmt{}, errAt(n, "!policy needs an id")
	}
	if err := checkID(n, s.id); err != nil {
		return stmt{}, err
	}
	return s, nil
}

func (p *parser) annotations(n *yaml.Node) ([]kv, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, "annotations must be a mapping of names to values")
	}
	var out []kv
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		v, err := p.deref(n.Content[i+1])
		if err != nil {
			return nil, err
		}
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			return nil, errAt(k, "annotation names must be plain text")
		}
		if v.Kind != yaml.ScalarNode {
			return nil, errAt(v, "annotation %q must have a single value", k.Value)
		}
		val := v.Value
		if v.Tag == "!!null" {
			val = ""
		}
		out = append(out, kv{k.Value, val})
	}
	return out, nil
}

// ref parses a reference: a tagged scalar id (`!group admins`), or a tagged
// mapping with an id (a record used through an alias).
func (p *parser) ref(n *yaml.Node) (ref, error) {
	n, err := p.deref(n)
	if err != nil {
		return ref{}, err
	}
	kind := tagName(n)
	if !recordKinds[kind] {
		if kind == "" {
			return ref{}, errAt(n, "expected a tagged reference such as !group name")
		}
		return ref{}, errAt(n, "Unrecognized data type '!%s'", kind)
	}
	r := ref{kind: kind, line: n.Line, col: n.Column}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!null" {
			r.id = n.Value
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "id" {
				v, err := p.deref(n.Content[i+1])
				if err != nil {
					return ref{}, err
				}
				if r.id, err = scalarText(v, "id"); err != nil {
					return ref{}, err
				}
			}
		}
	default:
		return ref{}, errAt(n, "a reference must be a tagged id")
	}
	if err := checkID(n, r.id); err != nil {
		return ref{}, err
	}
	return r, nil
}

// refs parses one reference or a (possibly nested) list of them.
func (p *parser) refs(n *yaml.Node, depth int) ([]ref, error) {
	n, err := p.deref(n)
	if err != nil {
		return nil, err
	}
	if depth > maxPolicyDepth {
		return nil, errAt(n, "references nested too deeply")
	}
	if err := p.count(n); err != nil {
		return nil, err
	}
	if n.Kind != yaml.SequenceNode {
		r, err := p.ref(n)
		if err != nil {
			return nil, err
		}
		return []ref{r}, nil
	}
	var out []ref
	for _, item := range n.Content {
		sub, err := p.refs(item, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// oneOrMany reads attribute single or plural (exactly one of them).
func (p *parser) oneOrMany(f map[string]*yaml.Node, n *yaml.Node, what, single, plural string) ([]ref, error) {
	a, okA := f[single]
	b, okB := f[plural]
	switch {
	case okA && okB:
		return nil, errAt(n, "!%s: give '%s' or '%s', not both", what, single, plural)
	case !okA && !okB:
		return nil, errAt(n, "!%s needs '%s'", what, single)
	case okA:
		return p.refs(a, 0)
	default:
		return p.refs(b, 0)
	}
}

func (p *parser) grant(n *yaml.Node, tag string) (stmt, error) {
	f, err := p.fields(n, tag, "role", "member", "members")
	if err != nil {
		return stmt{}, err
	}
	s := stmt{op: opGrant, line: n.Line, col: n.Column}
	if tag == "revoke" {
		s.op = opRevoke
	}
	rv, ok := f["role"]
	if !ok {
		return stmt{}, errAt(n, "!%s needs 'role'", tag)
	}
	if s.roles, err = p.refs(rv, 0); err != nil {
		return stmt{}, err
	}
	a, okA := f["member"]
	b, okB := f["members"]
	if okA == okB {
		return stmt{}, errAt(n, "!%s needs one of 'member' or 'members'", tag)
	}
	if !okA {
		a = b
	}
	if s.members, err = p.members(a); err != nil {
		return stmt{}, err
	}
	for _, r := range append(append([]ref(nil), s.roles...), s.members...) {
		if !roleKinds[r.kind] {
			return stmt{}, &conjurPolicyError{Line: r.line, Col: r.col, Msg: fmt.Sprintf("!%s: a %s is not a role", tag, r.kind)}
		}
	}
	return s, nil
}

// members parses grant members, accepting `!member {role: ..., admin: ...}`.
func (p *parser) members(n *yaml.Node) ([]ref, error) {
	n, err := p.deref(n)
	if err != nil {
		return nil, err
	}
	if n.Kind == yaml.SequenceNode {
		var out []ref
		for _, item := range n.Content {
			sub, err := p.members(item)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		}
		return out, nil
	}
	if tagName(n) == "member" {
		f, err := p.fields(n, "member", "role", "admin")
		if err != nil {
			return nil, err
		}
		rv, ok := f["role"]
		if !ok {
			return nil, errAt(n, "!member needs 'role'")
		}
		return p.refs(rv, 0)
	}
	return p.refs(n, 0)
}

func (p *parser) permit(n *yaml.Node, tag string) (stmt, error) {
	f, err := p.fields(n, tag, "role", "roles", "privilege", "privileges", "resource", "resources")
	if err != nil {
		return stmt{}, err
	}
	s := stmt{op: opPermit, line: n.Line, col: n.Column}
	if tag == "deny" {
		s.op = opDeny
	}
	if s.roles, err = p.oneOrMany(f, n, tag, "role", "roles"); err != nil {
		return stmt{}, err
	}
	for _, r := range s.roles {
		if !roleKinds[r.kind] {
			return stmt{}, &conjurPolicyError{Line: r.line, Col: r.col, Msg: fmt.Sprintf("!%s: a %s is not a role", tag, r.kind)}
		}
	}
	if s.resources, err = p.oneOrMany(f, n, tag, "resource", "resources"); err != nil {
		return stmt{}, err
	}
	a, okA := f["privilege"]
	b, okB := f["privileges"]
	if okA == okB {
		return stmt{}, errAt(n, "!%s needs one of 'privilege' or 'privileges'", tag)
	}
	if !okA {
		a = b
	}
	if s.privileges, err = p.privileges(a); err != nil {
		return stmt{}, err
	}
	return s, nil
}

func (p *parser) privileges(n *yaml.Node) ([]string, error) {
	var nodes []*yaml.Node
	if n.Kind == yaml.SequenceNode {
		nodes = n.Content
	} else {
		nodes = []*yaml.Node{n}
	}
	var out []string
	for _, item := range nodes {
		item, err := p.deref(item)
		if err != nil {
			return nil, err
		}
		if item.Kind != yaml.ScalarNode || item.Tag == "!!null" || item.Value == "" {
			return nil, errAt(item, "a privilege must be a name such as read, execute or update")
		}
		if strings.ContainsAny(item.Value, " \t\r\n:,") {
			return nil, errAt(item, "privilege %q is not a valid name", item.Value)
		}
		out = append(out, item.Value)
	}
	if len(out) == 0 {
		return nil, errAt(n, "at least one privilege is needed")
	}
	return out, nil
}

func (p *parser) del(n *yaml.Node) (stmt, error) {
	f, err := p.fields(n, "delete", "record")
	if err != nil {
		return stmt{}, err
	}
	rv, ok := f["record"]
	if !ok {
		return stmt{}, errAt(n, "!delete needs 'record'")
	}
	s := stmt{op: opDelete, line: n.Line, col: n.Column}
	if s.resources, err = p.refs(rv, 0); err != nil {
		return stmt{}, err
	}
	return s, nil
}
