package driver

import (
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// auditFields appends the record's fields to fields (one audit line).
func auditFields(fields []zap.Field, r *audit.Record) []zap.Field {
	fields = append(fields,
		zap.String("secret", r.Secret),
		zap.String("service", r.Service),
		zap.String("service_id", r.ServiceID),
		zap.String("task", r.Task),
		zap.String("node", r.Node),
		zap.String("image", r.Image),
		zap.String("rule", r.Rule),
		zap.String("variable", r.Variable),
		zap.String("decision", r.Decision),
		zap.String("code", string(r.Code)),
		zap.Duration("duration", r.Duration),
		zap.Bool("coalesced", r.Coalesced),
		zap.Bool("cached", r.Cached),
		zap.Bool("do_not_reuse", r.DoNotReuse),
	)
	if r.Identity != "" {
		fields = append(fields, zap.String("identity", r.Identity))
	}
	if r.StackLabelMismatch != "" {
		fields = append(fields, zap.String("stack_label_mismatch", r.StackLabelMismatch))
	}
	if r.Prefetched {
		fields = append(fields, zap.Bool("prefetched", true))
	}
	if r.Members != nil {
		fields = append(fields, zap.Strings("members", r.Members))
	}
	if r.Stale {
		fields = append(fields, zap.Bool("stale", true), zap.Duration("stale_age", r.StaleAge), zap.String("stale_cause", string(r.StaleCause)))
	}
	return fields
}

// lineFields pools the field slices of audit lines: zap's cores encode (or,
// the test observer, copy) a line's fields before Write returns, so a
// slice is free again once the line is written, and a GetSecret costs no
// new one (about 1 KiB each).
var lineFields = sync.Pool{New: func() any { s := make([]zap.Field, 0, 24); return &s }}

// journal keeps the counters, a ring of the most recent records and the
// secrets seen with a stack label that disagrees with their name.
type journal struct {
	mu         sync.Mutex
	ring       []audit.Record
	next       int
	full       bool
	counters   pluginapi.Counters
	mismatches map[string]*pluginapi.StackMismatch // by secret name
}

func newJournal(size int) *journal {
	if size <= 0 {
		size = 100
	}
	return &journal{ring: make([]audit.Record, size), counters: pluginapi.Counters{ByCode: map[errcode.Code]uint64{}}}
}

func (j *journal) add(r audit.Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ring[j.next] = r
	j.next = (j.next + 1) % len(j.ring)
	if j.next == 0 {
		j.full = true
	}
	j.counters.Requests++
	switch r.Decision {
	case audit.DecisionAllow:
		j.counters.Allowed++
		if r.Stale {
			j.counters.Stale++
		}
	case audit.DecisionDeny:
		j.counters.Denied++
	default:
		j.counters.Errors++
	}
	if r.Code != "" {
		j.counters.ByCode[r.Code]++
	}
	if r.StackLabelMismatch != "" {
		j.noteMismatch(&r)
	}
}

// noteMismatch records r's secret as relabelled, keeping the
// MaxStackMismatches most recently seen.
func (j *journal) noteMismatch(r *audit.Record) {
	m := j.mismatches[r.Secret]
	if m == nil {
		if j.mismatches == nil {
			j.mismatches = map[string]*pluginapi.StackMismatch{}
		}
		if len(j.mismatches) >= pluginapi.MaxStackMismatches {
			var oldest *pluginapi.StackMismatch
			for _, o := range j.mismatches {
				if oldest == nil || o.LastSeen.Before(oldest.LastSeen) {
					oldest = o
				}
			}
			delete(j.mismatches, oldest.Secret)
		}
		m = &pluginapi.StackMismatch{Secret: r.Secret}
		j.mismatches[r.Secret] = m
	}
	m.Label, m.LastSeen = r.StackLabelMismatch, r.Time
	m.Requests++
}

// stackMismatches returns the relabelled secrets, by name.
func (j *journal) stackMismatches() []pluginapi.StackMismatch {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]pluginapi.StackMismatch, 0, len(j.mismatches))
	for _, m := range j.mismatches {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b pluginapi.StackMismatch) int { return strings.Compare(a.Secret, b.Secret) })
	return out
}

// snapshot returns the counters and the recent records, newest first.
func (j *journal) snapshot() (pluginapi.Counters, []audit.Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c := j.counters
	c.ByCode = make(map[errcode.Code]uint64, len(j.counters.ByCode))
	for k, v := range j.counters.ByCode {
		c.ByCode[k] = v
	}
	n := j.next
	if j.full {
		n = len(j.ring)
	}
	out := make([]audit.Record, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, j.ring[(j.next-i+len(j.ring))%len(j.ring)])
	}
	return c, out
}
