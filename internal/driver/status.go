package driver

import "time"

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
	LastHandoff *HandoffState `json:"last_handoff,omitempty"`
	Mapping     *MappingState `json:"mapping,omitempty"`
	Counters    Counters      `json:"counters"`
	Recent      []Record      `json:"recent"` // newest first
}

// ConjurState is the Conjur client's side of the status.
type ConjurState struct {
	Login                 string     `json:"login,omitempty"`
	CredentialSource      string     `json:"credential_source"` // handoff, file, env, jwt or none
	CredentialFingerprint string     `json:"credential_fingerprint,omitempty"`
	CredentialSetAt       time.Time  `json:"credential_set_at,omitzero"`
	TokenExpiresAt        time.Time  `json:"token_expires_at,omitzero"`
	LastContact           time.Time  `json:"last_contact,omitzero"`
	LastURL               string     `json:"last_url,omitempty"`
	LastErrorCode         string     `json:"last_error_code,omitempty"`
	LastError             string     `json:"last_error,omitempty"`
	LastErrorAt           time.Time  `json:"last_error_at,omitzero"`
	URLs                  []URLState `json:"urls,omitempty"`
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

// Status reports the plugin's state now.
func (d *Driver) Status() Status {
	counters, recent := d.journal.snapshot()
	st := Status{
		Version:     d.opts.Version,
		StartedAt:   d.started,
		Now:         d.opts.Now(),
		Configured:  d.opts.Fetcher != nil,
		Counters:    counters,
		Recent:      recent,
		LastHandoff: d.handoff.lastAttempt(),
	}
	if !st.Configured {
		st.ConfigProblem = d.opts.NotConfigured
	}
	if d.opts.ConjurStatus != nil {
		cs := d.opts.ConjurStatus.Status()
		st.Conjur = &ConjurState{
			Login:                 cs.Login,
			CredentialSource:      cs.CredentialSource,
			CredentialFingerprint: cs.CredentialFingerprint,
			CredentialSetAt:       cs.CredentialSetAt,
			TokenExpiresAt:        cs.TokenExpiresAt,
			LastContact:           cs.LastContact,
			LastURL:               cs.LastURL,
			LastErrorCode:         string(cs.LastErrorCode),
			LastError:             cs.LastError,
			LastErrorAt:           cs.LastErrorAt,
		}
		if st.Conjur.CredentialSource == "" {
			st.Conjur.CredentialSource = "none"
		}
		for _, u := range cs.URLs {
			st.Conjur.URLs = append(st.Conjur.URLs, URLState{URL: u.URL, Healthy: u.Healthy, Failures: u.Failures, RetryAt: u.RetryAt, LastError: u.LastError})
		}
	}
	if d.opts.PolicyStatus != nil {
		ps := d.opts.PolicyStatus.Status()
		st.Mapping = &MappingState{
			Path:        ps.Path,
			Hash:        ps.Hash,
			LoadedAt:    ps.LoadedAt,
			Rules:       ps.Rules,
			FailClosed:  ps.FailClosed,
			LastError:   ps.LastError,
			LastErrorAt: ps.LastErrorAt,
			Problems:    ps.Problems,
		}
	}
	return st
}
