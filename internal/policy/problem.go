package policy

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a mapping file, at a position (1-based
// line and column).
type Problem struct {
	File      string
	Line, Col int
	Msg       string
	// Warning marks a finding that does not make the file invalid (see
	// Policy.Warnings).
	Warning bool
}

// String renders the problem as "FILE:LINE:COL: message", or
// "FILE:LINE:COL: warning: message" for a warning.
func (p Problem) String() string {
	if p.Warning {
		return fmt.Sprintf("%s:%d:%d: warning: %s", p.File, p.Line, p.Col, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg)
}

// Problems is every problem found in one file, in file order. It is the
// error returned by Parse.
type Problems []Problem

// Error renders one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Strings returns each problem rendered as "FILE:LINE:COL: message".
func (ps Problems) Strings() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
