// Package audit is the audit record of one GetSecret decision: what the
// driver's audit line, the status endpoint's recent decisions and the
// syslog copy (internal/auditsink) carry. It never holds a value.
package audit

import (
	"time"

	"github.com/cyberark/conjur-swarm/internal/errcode"
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
	Time      time.Time `json:"time"`
	Secret    string    `json:"secret"`
	Service   string    `json:"service,omitempty"`
	ServiceID string    `json:"service_id,omitempty"`
	Task      string    `json:"task,omitempty"`
	Node      string    `json:"node,omitempty"`
	Image     string    `json:"image,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	Variable  string    `json:"variable,omitempty"`
	// Identity is the Conjur host (below the authn-jwt identity-path) the
	// Get was made as in the per-request identity mode.
	Identity string `json:"identity,omitempty"`
	// StackLabelMismatch is the secret's stack label when its name does not
	// start with "<label>_": another stack's file relabelled it (see
	// pluginapi.StackMismatch).
	StackLabelMismatch string        `json:"stack_label_mismatch,omitempty"`
	Members            []string      `json:"members,omitempty"` // a bundle's member ids, sorted by member name
	Decision           string        `json:"decision"`
	Code               errcode.Code  `json:"code,omitempty"`
	Reason             string        `json:"reason,omitempty"` // the policy's reason, or the Err sent back
	Duration           time.Duration `json:"duration_ns"`
	Coalesced          bool          `json:"coalesced,omitempty"`
	Cached             bool          `json:"cached,omitempty"`
	Prefetched         bool          `json:"prefetched,omitempty"` // served from the values fetched at the task's first Get
	DoNotReuse         bool          `json:"do_not_reuse,omitempty"`
	// Stale: the value is the last good one of a stale_if_error rule,
	// fetched StaleAge ago, served because the fetch failed StaleCause.
	Stale      bool          `json:"stale,omitempty"`
	StaleAge   time.Duration `json:"stale_age_ns,omitempty"`
	StaleCause errcode.Code  `json:"stale_cause,omitempty"`
}
