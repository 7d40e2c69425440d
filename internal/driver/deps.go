package driver

import (
	"context"
	"errors"
	"github.com/cyberark/conjur-swarm/internal/policy"
	"time"
)

// The types below mirror internal/policy and internal/conjur as written in
// notes/contracts.md. They are temporary: once those packages land this file
// becomes aliases to them.

// PolicyRequest is what the mapping policy needs to decide.
type PolicyRequest = policy.Request

// PolicyDecision is the policy's answer.
type PolicyDecision = policy.Decision

// PolicyStatus describes the loaded mapping file.
type PolicyStatus = policy.StoreStatus

// Ref names one Conjur variable version.
type Ref struct {
	ID      string
	Version int
	NoCache bool
}

// Value is a fetched value.
type Value struct {
	Data              []byte
	Coalesced, Cached bool
	URL               string
}

// Credential is a Conjur credential handed over by the bootstrap agent.
type Credential struct{ Login, APIKey, JWT string }

// Fingerprint is a short stable hex digest.
func (c Credential) Fingerprint() string { return "" }

// ParseCredential parses credential JSON.
func ParseCredential(data []byte) (Credential, error) { return Credential{}, errors.New("x") }

// ConjurStatus is the Conjur client's state.
type ConjurStatus struct {
	Login, CredentialSource, CredentialFingerprint string
	CredentialSetAt, TokenExpiresAt, LastContact   time.Time
	LastURL                                        string
	LastErrorCode                                  ConjurCode
	LastError                                      string
	URLs                                           []URLStatus
}

// URLStatus is one appliance URL's health.
type URLStatus struct {
	URL      string
	Healthy  bool
	Failures int
	RetryAt  time.Time
}

// ConjurCode is a Conjur failure code.
type ConjurCode string

// ConjurError is a Conjur failure.
type ConjurError struct {
	Code     ConjurCode
	Variable string
	Msg      string
	Cause    error
}

func (e *ConjurError) Error() string { return e.Msg }
func (e *ConjurError) Unwrap() error { return e.Cause }

func conjurCodeOf(err error) ConjurCode {
	if err == nil {
		return ""
	}
	var e *ConjurError
	if errors.As(err, &e) {
		return e.Code
	}
	return "INTERNAL"
}

var _ = context.Background
