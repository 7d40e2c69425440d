// Package conjurtest is a fake of the Conjur client's side that the driver
// uses (Get, GetMany, LastGood, Adopt, Status), for the tests of the
// packages above the driver: values from a map, adoptions recorded, with
// failure switches.
package conjurtest

import (
	"context"
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Fake answers Get from Values (NOT_FOUND for an id it does not hold) and
// GetMany as one Get per ref; it has no last good value; Adopt records the
// credential (AcceptKey: only that API key); Status reports Login and URLs
// with the last credential adopted. It is safe for concurrent use.
type Fake struct {
	Values    map[string][]byte
	Answer    func(conjur.Ref) (conjur.Value, error) // when set, Get answers with it instead of Values
	GetErr    error                                  // FailGet: every Get answers it
	AdoptErr  error                                  // FailAdopt: every Adopt answers it
	AcceptKey string                                 // when set, Adopt refuses every other API key (AUTH_REFUSED)
	PingErr   error                                  // FailPing: Ping answers it
	Login     string                                 // Status's login (default host/swarm/conjur-plugin)
	URLs      []string
	OnAdopt   func() // called after each adoption, when set

	mu      sync.Mutex
	asked   []string
	adopted []credential.Credential
}

// Get answers ref from Values.
func (f *Fake) Get(_ context.Context, ref conjur.Ref) (conjur.Value, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, ref.ID)
	if f.GetErr != nil {
		return conjur.Value{}, f.GetErr
	}
	if f.Answer != nil {
		return f.Answer(ref)
	}
	data, ok := f.Values[ref.ID]
	if !ok {
		return conjur.Value{}, &conjur.Error{Code: errcode.NotFound, Variable: ref.ID, Msg: "variable " + ref.ID + " is not found; check the id"}
	}
	return conjur.Value{Data: append([]byte(nil), data...)}, nil
}

// GetMany answers each ref as Get does.
func (f *Fake) GetMany(ctx context.Context, refs []conjur.Ref) []conjur.Result {
	out := make([]conjur.Result, len(refs))
	for i, r := range refs {
		out[i].Value, out[i].Err = f.Get(ctx, r)
	}
	return out
}

// FailAdopt makes every Adopt answer err from now on (nil: adopt again).
func (f *Fake) FailAdopt(err error) {
	f.mu.Lock()
	f.AdoptErr = err
	f.mu.Unlock()
}

// Ping answers PingErr.
func (f *Fake) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.PingErr
}

// LastGood has no value.
func (*Fake) LastGood(conjur.Ref, time.Duration) (conjur.Value, time.Time, bool) {
	return conjur.Value{}, time.Time{}, false
}

// Adopt records cred, or answers AdoptErr, or AUTH_REFUSED for a key other
// than AcceptKey.
func (f *Fake) Adopt(_ context.Context, cred credential.Credential) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.AdoptErr != nil {
		return f.AdoptErr
	}
	if f.AcceptKey != "" && cred.APIKey.Reveal() != f.AcceptKey {
		return &conjur.Error{Code: errcode.AuthRefused, Msg: "Conjur refused the credential; hand over the current API key"}
	}
	f.adopted = append(f.adopted, cred)
	if f.OnAdopt != nil {
		f.OnAdopt()
	}
	return nil
}

// Status reports Login and URLs, and the last credential adopted.
func (f *Fake) Status() conjur.Status {
	st := conjur.Status{Login: "host/swarm/conjur-plugin", CredentialSource: "none", LastURL: "https://conjur.test",
		URLs: []conjur.URLStatus{{URL: "https://conjur.test", Healthy: true}}}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Login != "" {
		st.Login = f.Login
	}
	if len(f.URLs) > 0 {
		st.URLs, st.LastURL = nil, f.URLs[0]
		for _, u := range f.URLs {
			st.URLs = append(st.URLs, conjur.URLStatus{URL: u, Healthy: true})
		}
	}
	if n := len(f.adopted); n > 0 {
		st.CredentialSource, st.CredentialFingerprint = "handoff", f.adopted[n-1].Fingerprint()
	}
	return st
}

// SetStatus sets the login and URLs Status reports.
func (f *Fake) SetStatus(login string, urls []string) {
	f.mu.Lock()
	f.Login, f.URLs = login, urls
	f.mu.Unlock()
}

// TakeAsked returns the ids fetched since the last TakeAsked, in order.
func (f *Fake) TakeAsked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	asked := f.asked
	f.asked = nil
	return asked
}

// Adopted returns the credentials adopted so far, in order.
func (f *Fake) Adopted() []credential.Credential {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]credential.Credential(nil), f.adopted...)
}
