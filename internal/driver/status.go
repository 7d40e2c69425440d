package driver

import "github.com/cyberark/conjur-swarm/internal/pluginapi"

// Status reports the plugin's state now.
func (d *Driver) Status() pluginapi.Status {
	counters, recent := d.journal.snapshot()
	st := pluginapi.Status{
		Version:    d.opts.Version,
		StartedAt:  d.started,
		Now:        d.opts.Now(),
		Configured: !d.notConfigured,
		Counters:   counters,
		Recent:     recent,
		// StackMismatches: see journal.noteMismatch.
		StackMismatches: d.journal.stackMismatches(),
		LastHandoff:     d.handoff.lastAttempt(),
	}
	if !st.Configured {
		st.ConfigProblem = d.configProblem
	}
	if !d.notConfigured {
		cs := d.opts.Conjur.Status()
		st.Conjur = &pluginapi.ConjurState{
			Login:                 cs.Login,
			Account:               d.opts.Account,
			CredentialSource:      cs.CredentialSource,
			CredentialFingerprint: cs.CredentialFingerprint,
			CredentialSetAt:       cs.CredentialSetAt,
			TokenExpiresAt:        cs.TokenExpiresAt,
			Identities:            cs.Identities,
			SigningIssuer:         cs.SigningIssuer,
			SigningKeyID:          cs.SigningKeyID,
			LastContact:           cs.LastContact,
			LastURL:               cs.LastURL,
			LastErrorCode:         string(cs.LastErrorCode),
			LastError:             cs.LastError,
			LastErrorAt:           cs.LastErrorAt,
			CredentialFile:        cs.CredentialFile,
		}
		if st.Conjur.CredentialSource == "" {
			st.Conjur.CredentialSource = "none"
		}
		for _, u := range cs.URLs {
			st.Conjur.URLs = append(st.Conjur.URLs, pluginapi.URLState{URL: u.URL, Healthy: u.Healthy, Failures: u.Failures, RetryAt: u.RetryAt, LastError: u.LastError})
		}
	}
	if d.opts.PolicyStatus != nil {
		ps := d.opts.PolicyStatus.Status()
		st.Mapping = &pluginapi.MappingState{
			Path:        ps.Path,
			Hash:        ps.Hash,
			LoadedAt:    ps.LoadedAt,
			Rules:       ps.Rules,
			FailClosed:  ps.FailClosed,
			LastError:   ps.LastError,
			LastErrorAt: ps.LastErrorAt,
			Problems:    ps.Problems,
		}
		if !d.notConfigured {
			st.StaleIfError = d.staleStatus(ps.StaleRules)
		}
	}
	return st
}
