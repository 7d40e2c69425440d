package driver

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// Decision outcomes as they appear in the audit log, the status endpoint and
// metrics.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	DecisionError = "error"
)

// Record is the audit record of one GetSecret decision. It never holds the
// value.
type Record struct {
	Time       time.Time     `json:"time"`
	Secret     string        `json:"secret"`
	Service    string        `json:"service,omitempty"`
	ServiceID  string        `json:"service_id,omitempty"`
	Task       string        `json:"task,omitempty"`
	Node       string        `json:"node,omitempty"`
	Image      string        `json:"image,omitempty"`
	Rule       string        `json:"rule,omitempty"`
	Variable   string        `json:"variable,omitempty"`
	Decision   string        `json:"decision"`
	Code       Code          `json:"code,omitempty"`
	Reason     string        `json:"reason,omitempty"` // the policy's reason, or the Err sent back
	Duration   time.Duration `json:"duration_ns"`
	Coalesced  bool          `json:"coalesced,omitempty"`
	Cached     bool          `json:"cached,omitempty"`
	DoNotReuse bool          `json:"do_not_reuse,omitempty"`
}

// fields returns the record as flat zap fields (one audit line).
func (r Record) fields() []zap.Field {
	return []zap.Field{
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
	}
}

// Counters count decisions since the plugin started.
type Counters struct {
	Requests uint64          `json:"requests"`
	Allowed  uint64          `json:"allowed"`
	Denied   uint64          `json:"denied"`
	Errors   uint64          `json:"errors"`
	ByCode   map[Code]uint64 `json:"by_code,omitempty"`
}

// journal keeps the counters and a ring of the most recent records.
type journal struct {
	mu       sync.Mutex
	ring     []Record
	next     int
	full     bool
	counters Counters
}

func newJournal(size int) *journal {
	if size <= 0 {
		size = 100
	}
	return &journal{ring: make([]Record, size), counters: Counters{ByCode: map[Code]uint64{}}}
}

func (j *journal) add(r Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ring[j.next] = r
	j.next = (j.next + 1) % len(j.ring)
	if j.next == 0 {
		j.full = true
	}
	j.counters.Requests++
	switch r.Decision {
	case DecisionAllow:
		j.counters.Allowed++
	case DecisionDeny:
		j.counters.Denied++
	default:
		j.counters.Errors++
	}
	if r.Code != "" {
		j.counters.ByCode[r.Code]++
	}
}

// snapshot returns the counters and the recent records, newest first.
func (j *journal) snapshot() (Counters, []Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c := j.counters
	c.ByCode = make(map[Code]uint64, len(j.counters.ByCode))
	for k, v := range j.counters.ByCode {
		c.ByCode[k] = v
	}
	n := j.next
	if j.full {
		n = len(j.ring)
	}
	out := make([]Record, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, j.ring[(j.next-i+len(j.ring))%len(j.ring)])
	}
	return c, out
}
