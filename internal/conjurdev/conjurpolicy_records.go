package conjurdev

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

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
		if err := p.recordFields(n, kind, depth, &s); err != nil {
			return stmt{}, err
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

// recordFields reads the mapping form of a record into s: id, owner,
// annotations, and the fields of its kind.
func (p *parser) recordFields(n *yaml.Node, kind string, depth int, s *stmt) error {
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
	case "host_factory":
		allowed = append(allowed, "layers")
	}
	f, err := p.fields(n, kind, allowed...)
	if err != nil {
		return err
	}
	if v, ok := f["id"]; ok {
		if s.id, err = scalarText(v, "id"); err != nil {
			return err
		}
	}
	if v, ok := f["owner"]; ok {
		r, err := p.ref(v)
		if err != nil {
			return err
		}
		if !roleKinds[r.kind] {
			return errAt(v, "owner must be a role (user, host, group, layer or policy), not a %s", r.kind)
		}
		s.owner = &r
	}
	if v, ok := f["annotations"]; ok {
		if s.annotations, err = p.annotations(v); err != nil {
			return err
		}
	}
	for _, key := range []string{"kind", "mime_type"} {
		if v, ok := f[key]; ok {
			text, err := scalarText(v, key)
			if err != nil {
				return err
			}
			s.annotations = append(s.annotations, kv{"conjur/" + key, text})
		}
	}
	if v, ok := f["restricted_to"]; ok {
		if s.restrictedTo, err = restrictedTo(v); err != nil {
			return err
		}
	}
	if v, ok := f["layers"]; ok {
		if s.layers, err = p.refs(v, depth+1); err != nil {
			return err
		}
		for _, l := range s.layers {
			if l.kind != "layer" {
				return errAt(v, "layers of a host factory must be !layer records, not !%s", l.kind)
			}
		}
	}
	if v, ok := f["body"]; ok && (v.Kind != yaml.ScalarNode || v.Tag != "!!null") {
		if v.Kind != yaml.SequenceNode {
			return errAt(v, "body must be a sequence of records and statements")
		}
		if s.body, err = p.list(v, depth+1); err != nil {
			return err
		}
	}
	return nil
}
