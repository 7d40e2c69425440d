package pluginapi

import (
	"time"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Status is the body of POST /ConjurSwarm.Status. It holds no secret value
// and no credential, only the credential's fingerprint.
type Status struct {
	Version   string    `json:"version,omitempty"`
	StartedAt time.Time `json:"started_at"`
	Now       time.Time `json:"now"`
	// Configured is false when the plugin's Conjur settings are incomplete;
	// ConfigProblem then says what is missing.
	Configured    bool         `json:"configured"`
	ConfigProblem string       `json:"config_problem,omitempty"`
	Conjur        *ConjurState `json:"conjur,omitempty"`
	// LastHandoff is the last credential handoff attempt, apart from the
	// credential in use (Conjur.CredentialFingerprint); nil before any.
	LastHandoff *HandoffState  `json:"last_handoff,omitempty"`
	Mapping     *MappingState  `json:"mapping,omitempty"`
	Counters    Counters       `json:"counters"`
	Recent      []audit.Record `json:"recent"` // newest first
	// StackMismatches are the secrets asked for since the plugin started
	// whose stack label disagrees with their name (at most
	// MaxStackMismatches, the most recently seen), by secret name.
	StackMismatches []StackMismatch `json:"stack_mismatches,omitempty"`
	// StaleIfError is, for each rule of the mapping with stale_if_error,
	// how many of the variables its Gets asked for have a last good value
	// the plugin could serve now: whether an outage of Conjur would be
	// ridden out.
	StaleIfError []StaleRuleState `json:"stale_if_error,omitempty"`
}

// StaleRuleState is one stale_if_error rule's last good values.
type StaleRuleState struct {
	Rule   string        `json:"rule"`
	Window time.Duration `json:"window_ns"`
	// Variables is how many variable versions (per identity) the rule's
	// Gets asked for since the plugin started (bounded: 4,096); Held
	// is how many of them have a last good value within the window.
	Variables int `json:"variables"`
	Held      int `json:"held"`
}

// StackMismatch is a secret whose stack label (com.docker.stack.namespace)
// is Label while its name does not start with "<Label>_": another stack's
// file named it and its deploy relabelled it.
type StackMismatch struct {
	Secret   string    `json:"secret"`
	Label    string    `json:"label"`
	LastSeen time.Time `json:"last_seen"`
	Requests uint64    `json:"requests"`
}

// MaxStackMismatches bounds Status.StackMismatches.
const MaxStackMismatches = 32

// ConjurState is the Conjur client's side of the status.
type ConjurState struct {
	Login string `json:"login,omitempty"`
	// CredentialFile is the state of CONJUR_SWARM_CREDENTIAL_FILE before
	// the plugin first used it (ready, or what is wrong); "" otherwise.
	CredentialFile        string    `json:"credential_file,omitempty"`
	Account               string    `json:"account,omitempty"` // CONJUR_ACCOUNT
	CredentialSource      string    `json:"credential_source"` // handoff, file, env, jwt, cert, azure, gcp, per-request or none
	CredentialFingerprint string    `json:"credential_fingerprint,omitempty"`
	CredentialSetAt       time.Time `json:"credential_set_at,omitzero"`
	TokenExpiresAt        time.Time `json:"token_expires_at,omitzero"`
	// Identities is how many Conjur identities the per-request identity
	// mode holds tokens for now (credential_source "per-request").
	Identities int `json:"identities,omitempty"`
	// SigningIssuer and SigningKeyID: in the per-request mode, the iss of
	// the JWTs this manager signs and the kid of its key signing now (the
	// key Conjur's authn-jwt public-keys must hold).
	SigningIssuer string     `json:"signing_issuer,omitempty"`
	SigningKeyID  string     `json:"signing_key_id,omitempty"`
	LastContact   time.Time  `json:"last_contact,omitzero"`
	LastURL       string     `json:"last_url,omitempty"`
	LastErrorCode string     `json:"last_error_code,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastErrorAt   time.Time  `json:"last_error_at,omitzero"`
	URLs          []URLState `json:"urls,omitempty"`
}

// HasCredential reports whether the plugin holds a credential.
func (c *ConjurState) HasCredential() bool {
	return c != nil && c.CredentialSource != "" && c.CredentialSource != "none"
}

// URLState is one appliance URL's health.
type URLState struct {
	URL       string    `json:"url"`
	Healthy   bool      `json:"healthy"`
	Failures  int       `json:"failures,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// MappingState is the mapping policy's side of the status.
type MappingState struct {
	Path     string    `json:"path"` // "" for the built-in policy
	Hash     string    `json:"hash"` // "" when no policy is in force
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	Rules    int       `json:"rules"`
	// FailClosed: no policy is in force (the file was broken at start) and
	// every request is answered MAPPING_INVALID until the file is fixed.
	FailClosed  bool      `json:"fail_closed,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Problems    []string  `json:"problems,omitempty"` // every problem of the rejected file
}

// HandoffState is the last credential handoff attempt, accepted or refused,
// kept apart from the credential in use: a refused newer credential leaves
// the old one working until the plugin restarts, and this is where an
// operator sees it before then. It holds the fingerprint, never the key.
type HandoffState struct {
	At          time.Time    `json:"at"`
	Accepted    bool         `json:"accepted"`
	Code        errcode.Code `json:"code,omitempty"` // why it was refused
	Fingerprint string       `json:"fingerprint,omitempty"`
	Err         string       `json:"err,omitempty"` // the answer the agent got
}

// Counters count decisions since the plugin started.
type Counters struct {
	Requests uint64                  `json:"requests"`
	Allowed  uint64                  `json:"allowed"`
	Denied   uint64                  `json:"denied"`
	Errors   uint64                  `json:"errors"`
	Stale    uint64                  `json:"stale,omitempty"` // allowed answers served from a last good value
	ByCode   map[errcode.Code]uint64 `json:"by_code,omitempty"`
}

// BootstrapAnswer is the body of the answer to POST /ConjurSwarm.Bootstrap.
type BootstrapAnswer struct {
	OK          bool   `json:"ok,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Err         string `json:"Err,omitempty"`
}
