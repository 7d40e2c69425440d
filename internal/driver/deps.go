package driver

import (
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// The driver speaks the policy's and the Conjur client's types; these
// aliases keep the consumer-side interfaces short.
type (
	// PolicyRequest is what the mapping policy needs to decide.
	PolicyRequest = policy.Request
	// PolicyDecision is the policy's answer.
	PolicyDecision = policy.Decision
	// PolicyStatus describes the loaded mapping file.
	PolicyStatus = policy.StoreStatus

	// Ref names one Conjur variable version.
	Ref = conjur.Ref
	// Value is a fetched value (it redacts itself).
	Value = conjur.Value
	// FetchResult is one answer of GetMany: a Value or an error.
	FetchResult = conjur.Result
	// Credential is a Conjur credential (it redacts itself).
	Credential = conjur.Credential
	// ConjurStatus is the Conjur client's state.
	ConjurStatus = conjur.Status
	// URLStatus is one appliance URL's health.
	URLStatus = conjur.URLStatus
)
