package driver

import (
	"context"
	"time"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// Conjur is the driver's whole Conjur side: *conjur.Client, or the
// NotConfigured that New puts in place when the plugin has no usable Conjur
// settings. Every ability the driver uses is a method here, so that no
// feature (bundles in one batch, prefetch, stale_if_error, the handoff, the
// status) turns off because a type lacks one. Each method takes the ref (or
// refs, or credential) it is about: what else a request carries to Conjur
// belongs in conjur.Ref.
type Conjur interface {
	// Get fetches one variable.
	Get(ctx context.Context, ref conjur.Ref) (conjur.Value, error)
	// GetMany fetches several variables together (an idle client sends
	// the latest versions in one batch request); the i-th Result answers
	// refs[i].
	GetMany(ctx context.Context, refs []conjur.Ref) []conjur.Result
	// LastGood answers, without contacting Conjur, from the value Conjur
	// last gave for ref (fetched with KeepLastGood) at most maxAge ago, and
	// when it gave it: the stale_if_error rules.
	LastGood(ref conjur.Ref, maxAge time.Duration) (conjur.Value, time.Time, bool)
	// Adopt checks a handed-over credential by authenticating with it, and
	// adopts it.
	Adopt(ctx context.Context, cred credential.Credential) error
	// Status reports the client's state for the status endpoint.
	Status() conjur.Status
	// Ping asks Conjur, as the plugin's own identity, whether it answers
	// now (/readyz, when no request reached Conjur for a while).
	Ping(ctx context.Context) error
}

// The Conjur client and NotConfigured are the two Conjur sides.
var (
	_ Conjur = (*conjur.Client)(nil)
	_ Conjur = NotConfigured{}
)

// Resolver decides which Conjur variable a request stands for and whether
// the task may have it (*policy.Store).
type Resolver interface {
	Resolve(policy.Request) policy.Decision
}

// PolicyReporter reports the mapping file's state for the status endpoint
// (*policy.Store).
type PolicyReporter interface {
	Status() policy.StoreStatus
}

// Observer receives one call per decision, one per answer served from a
// last good value and one per request for a secret whose stack label
// disagrees with its name, for metrics (*Metrics). Its labels must stay
// low-cardinality and secret-free: decision, code and rule only.
type Observer interface {
	ObserveDecision(decision string, code errcode.Code, rule string, d time.Duration)
	ObserveStale(rule string)
	ObserveStackMismatch()
}

// AuditSink takes a copy of every decision record for another destination
// (a SIEM). Audit must return at once, whatever happens to the record: a
// GetSecret never waits for it. *auditsink.Syslog implements it.
type AuditSink interface {
	Audit(rec audit.Record)
}
