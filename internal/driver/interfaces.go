package driver

import (
	"context"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// Resolver decides which Conjur variable a request stands for and whether
// the task may have it (*policy.Store).
type Resolver interface {
	Resolve(PolicyRequest) PolicyDecision
}

// Fetcher fetches one variable's value from Conjur (*conjur.Client).
type Fetcher interface {
	Get(ctx context.Context, ref Ref) (Value, error)
}

// ManyFetcher fetches several variables together (*conjur.Client): an idle
// client sends the latest versions in one batch request. The i-th Result
// answers refs[i]. A Fetcher without it gets a bundle's members by
// concurrent Gets.
type ManyFetcher interface {
	GetMany(ctx context.Context, refs []Ref) []FetchResult
}

// CredentialSink checks a handed-over credential by authenticating with it
// and adopts it (*conjur.Client).
type CredentialSink interface {
	Adopt(ctx context.Context, cred Credential) error
}

// ConjurReporter reports the Conjur client's state for the status endpoint.
type ConjurReporter interface {
	Status() ConjurStatus
}

// PolicyReporter reports the mapping file's state for the status endpoint.
type PolicyReporter interface {
	Status() PolicyStatus
}

// AuditSink takes a copy of every decision record for another destination
// (a SIEM). Audit must return at once, whatever happens to the record: a
// GetSecret never waits for it. *auditsink.Syslog implements it.
type AuditSink interface {
	Audit(rec pluginapi.Record)
}
