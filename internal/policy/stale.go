package policy

import (
	"time"

	"gopkg.in/yaml.v3"
)

// MaxStaleIfError bounds a rule's stale_if_error window.
const MaxStaleIfError = 24 * time.Hour

// staleIfError parses a rule's stale_if_error: a duration such as 10m, from
// 1s up to MaxStaleIfError.
func (ps *parser) staleIfError(n *yaml.Node) time.Duration {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		ps.add(n, "stale_if_error must be a duration such as \"10m\", got %s", describeNode(n))
		return 0
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		ps.add(n, "stale_if_error %q is not a duration: give one such as \"10m\" or \"1h\"", n.Value)
		return 0
	}
	if d < time.Second || d > MaxStaleIfError {
		ps.add(n, "stale_if_error %s is out of range: give from 1s up to %s, or leave it out (off)", d, MaxStaleIfError)
		return 0
	}
	return d
}
