package driver

import (
	"context"
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// fakeResolver answers from a function of the request; the default allows
// by the conjur.variable label, like the built-in rule.
type fakeResolver struct {
	fn func(policy.Request) policy.Decision
}

func (f *fakeResolver) Resolve(r policy.Request) policy.Decision {
	if f.fn != nil {
		return f.fn(r)
	}
	v, ok := r.SecretLabels["conjur.variable"]
	if !ok {
		return policy.Decision{Reason: "no rule matched", Condition: "match"}
	}
	return policy.Decision{Allow: true, Rule: "by-label", Variable: v, DoNotReuse: true, Reason: "rule by-label matched"}
}

// fakeFetcher serves values from a map, with failure switches.
type fakeFetcher struct {
	mu      sync.Mutex
	values  map[string][]byte
	err     error         // FailGet: returned for every Get when set
	block   chan struct{} // when set, Get waits for it (or ctx)
	entered chan struct{} // when set, Get sends on it after it starts
	refs    []Ref
	flags   Value // Coalesced / Cached copied to answers
}

func (f *fakeFetcher) Get(ctx context.Context, ref Ref) (Value, error) {
	f.mu.Lock()
	f.refs = append(f.refs, ref)
	block, entered, err := f.block, f.entered, f.err
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return Value{}, ctx.Err()
		}
	}
	if err != nil {
		return Value{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.values[ref.ID]
	if !ok {
		return Value{}, &conjur.Error{Code: "NOT_FOUND", Variable: ref.ID, Msg: "variable " + ref.ID + " is not found; check the id"}
	}
	return Value{Data: append([]byte(nil), data...), Coalesced: f.flags.Coalesced, Cached: f.flags.Cached, URL: "https://conjur.test"}, nil
}

func (f *fakeFetcher) lastRef() Ref {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.refs) == 0 {
		return Ref{}
	}
	return f.refs[len(f.refs)-1]
}

// fakeSink adopts credentials, with a failure switch.
type fakeSink struct {
	mu      sync.Mutex
	err     error
	adopted []Credential
	onAdopt func() // called after each adoption, when set
}

func (f *fakeSink) Adopt(_ context.Context, c Credential) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.adopted = append(f.adopted, c)
	if f.onAdopt != nil {
		f.onAdopt()
	}
	return nil
}

func (f *fakeSink) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.adopted)
}

// fakeConjurStatus reports a fixed status, or the sink's last credential.
// login and urls default to host/swarm/conjur-plugin and https://conjur.test.
type fakeConjurStatus struct {
	sink  *fakeSink
	login string
	urls  []string
}

func (f fakeConjurStatus) Status() ConjurStatus {
	st := ConjurStatus{Login: "host/swarm/conjur-plugin", CredentialSource: "none",
		LastContact: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), LastURL: "https://conjur.test",
		URLs: []URLStatus{{URL: "https://conjur.test", Healthy: true}}}
	if f.login != "" {
		st.Login = f.login
	}
	if len(f.urls) > 0 {
		st.URLs, st.LastURL = nil, f.urls[0]
		for _, u := range f.urls {
			st.URLs = append(st.URLs, URLStatus{URL: u, Healthy: true})
		}
	}
	if f.sink != nil {
		f.sink.mu.Lock()
		defer f.sink.mu.Unlock()
		if n := len(f.sink.adopted); n > 0 {
			st.CredentialSource, st.CredentialFingerprint = "handoff", f.sink.adopted[n-1].Fingerprint()
		}
	}
	return st
}

type fakePolicyStatus struct{}

func (fakePolicyStatus) Status() PolicyStatus {
	return PolicyStatus{Path: "/etc/conjur-swarm/mapping/mapping.yml", Hash: "sha256:abc", Rules: 2,
		LoadedAt: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)}
}
