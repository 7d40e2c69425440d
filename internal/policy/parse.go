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
	topKeys  = []string{"version", "account", "within", "identity", "rules"}
	ruleKeys = []string{"name", "match", "allow", "variable", "bundle", "field", "decode", "version", "identity", "reuse", "stale_if_error"}
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
	if v, ok := top["identity"]; ok {
		p.identity = ps.identity(v.val, "the default", nil)
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
	ps.lintReuse(p)
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
