package driver

import (
	"sync"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// Bounds of the stale book.
const (
	staleBookMaxRules = 256  // stale_if_error rules remembered
	staleBookMaxRefs  = 4096 // variable versions remembered per rule
)

// bookRef is a variable version as one identity reads it: what a last good
// value answers.
type bookRef struct {
	id       string
	version  int
	identity string
}

// staleBook remembers, for each stale_if_error rule, the variables its Gets
// asked for (bounded), so that the status can say how many of them have a
// last good value now. It holds no value. Its lock is a leaf.
type staleBook struct {
	mu    sync.Mutex
	rules map[string]map[bookRef]struct{}
}

func newStaleBook() *staleBook { return &staleBook{rules: map[string]map[bookRef]struct{}{}} }

// note records that rule's Get asked for refs.
func (b *staleBook) note(rule string, refs ...conjur.Ref) {
	b.mu.Lock()
	defer b.mu.Unlock()
	known := b.rules[rule]
	if known == nil {
		if len(b.rules) >= staleBookMaxRules {
			return
		}
		known = map[bookRef]struct{}{}
		b.rules[rule] = known
	}
	for _, r := range refs {
		k := bookRef{id: r.ID, version: r.Version}
		if r.Workload != nil {
			k.identity = r.Workload.Subject
		}
		if len(known) < staleBookMaxRefs {
			known[k] = struct{}{}
		}
	}
}

// refs returns the refs rule's Gets asked for, as LastGood takes them.
func (b *staleBook) refs(rule string) []conjur.Ref {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]conjur.Ref, 0, len(b.rules[rule]))
	for k := range b.rules[rule] {
		r := conjur.Ref{ID: k.id, Version: k.version}
		if k.identity != "" {
			r.Workload = &conjur.Workload{Subject: k.identity}
		}
		out = append(out, r)
	}
	return out
}

// staleStatus is, for each stale_if_error rule of the mapping in force,
// how many of the variables its Gets asked for have a last good value
// within its window now.
func (d *Driver) staleStatus(rules []policy.StaleRule) []pluginapi.StaleRuleState {
	out := make([]pluginapi.StaleRuleState, 0, len(rules))
	for _, r := range rules {
		st := pluginapi.StaleRuleState{Rule: r.Name, Window: r.Window}
		for _, ref := range d.stale.refs(r.Name) {
			st.Variables++
			if _, _, ok := d.opts.Conjur.LastGood(ref, r.Window); ok {
				st.Held++
			}
		}
		out = append(out, st)
	}
	return out
}
