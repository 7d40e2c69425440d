package conjurdev

import (
	"bytes"

	"gopkg.in/yaml.v3"
)

// scanMark is where libyaml's scanner stands (0-based line and column)
// when Conjur's policy parser, reading the YAML events of a document,
// meets a problem at node: Conjur reports that position, and the scanner
// reads ahead of the events it hands out. For the block style policies are
// written in, it stands
//   - after a key's ':' for a problem met at a key (a duplicate attribute,
//     an unknown tag on a mapping: the mapping starts when its first ':' is
//     read);
//   - after a plain scalar value and the blanks, line breaks and
//     indentation that follow it, at the next thing written (or at the end
//     of the document);
//   - for a flow collection that starts a line's value, past the end of
//     that line (libyaml reads it whole to know whether it is a key).
//
// Other shapes (quoted scalars followed by a comment, multi-line scalars)
// get the position after the node as go-yaml reports it.
func scanMark(src []byte, n *yaml.Node, afterKey bool) (int, int) {
	lines := bytes.SplitAfter(src, []byte("\n"))
	if afterKey {
		return n.Line - 1, n.Column - 1 + len(rawScalar(lines, n)) + 1
	}
	if endLine, endCol, entry, ok := flowCollection(lines, n); ok {
		if entry {
			return skipBlank(lines, endLine+1, 0)
		}
		return endLine, endCol
	}
	last := n
	for len(last.Content) > 0 {
		last = last.Content[len(last.Content)-1]
	}
	raw := rawScalar(lines, last)
	if last.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		return last.Line - 1, last.Column - 1 + len(raw)
	}
	return skipBlank(lines, last.Line-1, last.Column-1+len(raw))
}

// rawScalar is the source text of a one-line scalar node, with the tag
// and anchor written before it.
func rawScalar(lines [][]byte, n *yaml.Node) []byte {
	full, val := rawScalarParts(lines, n)
	if val == nil {
		return full[:0]
	}
	return full[:len(full)-len(val)+len(rawValue(val, n))]
}

// rawScalarParts is the rest of n's line from n's position, and from its
// value (after a tag and an anchor).
func rawScalarParts(lines [][]byte, n *yaml.Node) (full, val []byte) {
	if n.Line < 1 || n.Line > len(lines) || n.Kind != yaml.ScalarNode {
		return nil, nil
	}
	line := bytes.TrimRight(lines[n.Line-1], "\r\n")
	start := n.Column - 1
	if start < 0 || start > len(line) {
		return nil, nil
	}
	full = line[start:]
	val = full
	for len(val) > 0 && (val[0] == '!' || val[0] == '&') {
		i := bytes.IndexAny(val, " \t")
		if i < 0 {
			return full, nil
		}
		val = bytes.TrimLeft(val[i:], " \t")
	}
	return full, val
}

// rawValue is the scalar's own text at the start of rest.
func rawValue(rest []byte, n *yaml.Node) []byte {
	switch {
	case len(rest) == 0:
		return nil
	case n.Style&yaml.DoubleQuotedStyle != 0, n.Style&yaml.SingleQuotedStyle != 0:
		q := rest[0]
		for i := 1; i < len(rest); i++ {
			switch {
			case q == '"' && rest[i] == '\\':
				i++
			case rest[i] == q && q == '\'' && i+1 < len(rest) && rest[i+1] == '\'':
				i++
			case rest[i] == q:
				return rest[:i+1]
			}
		}
		return rest
	case bytes.HasPrefix(rest, []byte(n.Value)):
		return rest[:len(n.Value)]
	}
	return nil
}

// flowCollection finds the flow collection ([...] or {...}) that holds n
// when one opens on n's line before n: where it ends (0-based line, and
// the column after its closing bracket), and whether it is a sequence
// entry ("- [...]", which libyaml reads to the end of its line, as it may
// be a key) rather than a mapping value (": [...]").
func flowCollection(lines [][]byte, n *yaml.Node) (endLine, endCol int, entry, ok bool) {
	if n.Line < 1 || n.Line > len(lines) {
		return 0, 0, false, false
	}
	line := lines[n.Line-1]
	i := bytes.IndexAny(line, "[{")
	if i < 0 || i > n.Column-1 || bytes.ContainsAny(line[:i], "\"'#") {
		return 0, 0, false, false
	}
	before := bytes.TrimRight(line[:i], " \t")
	for len(before) > 0 && before[len(before)-1] != ':' && before[len(before)-1] != '-' {
		// a tag or an anchor between the indicator and the bracket
		k := bytes.LastIndexAny(before, " \t")
		if k < 0 {
			before = nil
			break
		}
		before = bytes.TrimRight(before[:k], " \t")
	}
	entry = len(before) == 0 || before[len(before)-1] == '-'
	depth := 0
	for l := n.Line - 1; l < len(lines); l++ {
		from := 0
		if l == n.Line-1 {
			from = i
		}
		for c := from; c < len(lines[l]); c++ {
			switch lines[l][c] {
			case '[', '{':
				depth++
			case ']', '}':
				depth--
				if depth == 0 {
					return l, c + 1, entry, true
				}
			}
		}
	}
	return len(lines) - 1, 0, entry, true
}

// skipBlank is the position of the first character at or after (line,
// col) that is not a blank or a line break, or the end of the document.
func skipBlank(lines [][]byte, line, col int) (int, int) {
	for ; line < len(lines); line, col = line+1, 0 {
		l := lines[line]
		for ; col < len(l); col++ {
			if c := l[col]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				return line, col
			}
		}
	}
	if len(lines) > 0 && !bytes.HasSuffix(lines[len(lines)-1], []byte("\n")) {
		return len(lines) - 1, len(lines[len(lines)-1])
	}
	return len(lines), 0
}
