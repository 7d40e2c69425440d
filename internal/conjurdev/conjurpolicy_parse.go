package conjurdev

import (
	"errors"
	"fmt"
	"net/netip"
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

// conjurPolicyError is a semantic error in a policy document, as Conjur's
// policy parser raises it: Conjur::PolicyParser::Invalid, whose message is
// "Error at line L, column C in policy : MSG" with L and C the YAML
// scanner's position (0-based) when the parser met the problem, or, when
// ruby is set, a resolver's error (Conjur::PolicyParser::ResolverError),
// whose message is the bare text and which has no position.
type conjurPolicyError struct {
	Line, Col int
	Msg       string
	ruby      bool

	// Where the problem was met, turned into Line and Col by
	// parseConjurPolicy (see scanMark): after node, or after the ':' that
	// follows node when afterKey.
	node     *yaml.Node
	afterKey bool
}

func (e *conjurPolicyError) Error() string {
	if e.ruby {
		return e.Msg
	}
	return fmt.Sprintf("Error at line %d, column %d in policy : %s", e.Line, e.Col, e.Msg)
}

func errAt(n *yaml.Node, format string, args ...any) *conjurPolicyError {
	e := &conjurPolicyError{Msg: fmt.Sprintf(format, args...), node: n}
	if n != nil {
		e.Line, e.Col = n.Line-1, n.Column-1
	}
	return e
}

// errAtKey is errAt for a problem Conjur meets at a mapping key (its
// scanner then stands after the key's ':').
func errAtKey(k *yaml.Node, format string, args ...any) *conjurPolicyError {
	e := errAt(k, format, args...)
	e.afterKey = true
	return e
}

// yamlSyntaxError is a document that is not YAML. Conjur's loader does not
// catch the parser's exception (Psych::SyntaxError) on a load, so a load
// answers 500; a dry run reports it as invalid YAML.
type yamlSyntaxError struct{ msg string }

func (e *yamlSyntaxError) Error() string { return e.msg }

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
	kind, id     string
	owner        *ref
	annotations  []kv
	body         []stmt         // policies
	layers       []ref          // host factories
	restrictedTo []netip.Prefix // users and hosts

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
		return nil, &yamlSyntaxError{msg: yamlMsg(err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	p := &parser{}
	var stmts []stmt
	var err error
	switch {
	case root.Kind == yaml.SequenceNode:
		stmts, err = p.list(root, 0)
	case root.Kind == yaml.MappingNode && len(root.Content) > 0:
		// Conjur's handler wants a sequence at the root.
		err = errAtKey(root.Content[0], "Unexpected mapping")
	case root.Kind == yaml.ScalarNode && root.Value == "":
		return nil, nil
	case root.Kind == yaml.ScalarNode:
		err = errAt(root, "Unexpected scalar")
	default:
		err = errAt(root, "policy must be a sequence of records and statements")
	}
	var pe *conjurPolicyError
	if errors.As(err, &pe) && pe.node != nil {
		pe.Line, pe.Col = scanMark(data, pe.node, pe.afterKey)
	}
	return stmts, err
}

func yamlMsg(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

type parser struct {
	aliases int // alias expansions, bounded against alias bombs
	nodes   int // statements and references produced, bounded likewise

	seen map[*yaml.Node]bool // nodes already listed as statements
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
		if p.seen[item] {
			// The same node again through an alias: Conjur's resolvers
			// visit each parsed object once.
			continue
		}
		if p.seen == nil {
			p.seen = map[*yaml.Node]bool{}
		}
		p.seen[item] = true
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
	case tag == "" && n.Kind == yaml.ScalarNode && n.Tag != "!!null":
		// Conjur's parser takes an untagged string as a statement, and its
		// loader then fails on it with Ruby's NoMethodError, line 0.
		return stmt{}, &conjurPolicyError{ruby: true,
			Msg: fmt.Sprintf("undefined method `referenced_records' for %q:String", n.Value)}
	case tag == "":
		return stmt{}, errAt(n, "expected a tagged record or statement such as !variable or !permit")
	case tag == "host-factory":
		return p.record(n, "host_factory", depth)
	case recordKinds[tag] && tag != "host_factory":
		return p.record(n, tag, depth)
	case tag == "grant" || tag == "revoke":
		return p.grant(n, tag)
	case tag == "permit" || tag == "deny":
		return p.permit(n, tag)
	case tag == "delete":
		return p.del(n)
	default:
		if n.Kind == yaml.MappingNode && len(n.Content) > 0 {
			return stmt{}, errAtKey(n.Content[0], "Unrecognized data type '!%s'", tag)
		}
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
		if _, dup := out[k.Value]; dup {
			return nil, errAtKey(k, "Duplicate attribute: %s", k.Value)
		}
		if !ok {
			// Conjur meets it when the value is read.
			return nil, errAt(v, "No such attribute '%s' on type %s", k.Value, rubyTypeName(what))
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

// rubyTypeName is the policy parser's class for a record kind or
// statement tag (Types::HostFactory for host_factory, Types::Grant for
// grant).
func rubyTypeName(what string) string {
	parts := strings.FieldsFunc(what, func(r rune) bool { return r == '_' || r == '-' })
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "")
}
