package driver

import (
	"context"
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
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

// fakeConjur is the driver's Conjur side in tests: values from a map, last
// good values from another, adoption and status, with failure switches.
// GetMany records each call and answers each ref as Get would.
type fakeConjur struct {
	mu      sync.Mutex
	values  map[string][]byte
	err     error         // FailGet: returned for every Get when set
	block   chan struct{} // when set, Get waits for it (or ctx)
	entered chan struct{} // when set, Get sends on it after it starts
	refs    []conjur.Ref  // every ref fetched, by Get or GetMany
	batches [][]conjur.Ref
	flags   conjur.Value // Coalesced / Cached copied to answers

	good   map[string][]byte // LastGood's answers by variable
	goodAt time.Time         // when the good values were fetched

	adoptErr error // FailAdopt: returned for every Adopt when set
	adopted  []credential.Credential
	onAdopt  func() // called after each adoption, when set

	login string   // Status's login (default host/swarm/conjur-plugin)
	urls  []string // Status's URLs (default https://conjur.test)
}

func (f *fakeConjur) Get(ctx context.Context, ref conjur.Ref) (conjur.Value, error) {
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
			return conjur.Value{}, ctx.Err()
		}
	}
	if err != nil {
		return conjur.Value{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.values[ref.ID]
	if !ok {
		return conjur.Value{}, &conjur.Error{Code: errcode.NotFound, Variable: ref.ID, Msg: "variable " + ref.ID + " is not found; check the id"}
	}
	return conjur.Value{Data: append([]byte(nil), data...), Coalesced: f.flags.Coalesced, Cached: f.flags.Cached, URL: "https://conjur.test"}, nil
}

func (f *fakeConjur) GetMany(ctx context.Context, refs []conjur.Ref) []conjur.Result {
	f.mu.Lock()
	f.batches = append(f.batches, append([]conjur.Ref(nil), refs...))
	f.mu.Unlock()
	out := make([]conjur.Result, len(refs))
	for i, r := range refs {
		out[i].Value, out[i].Err = f.Get(ctx, r)
	}
	return out
}

func (f *fakeConjur) LastGood(ref conjur.Ref, _ time.Duration) (conjur.Value, time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.good[ref.ID]
	if !ok {
		return conjur.Value{}, time.Time{}, false
	}
	return conjur.Value{Data: v}, f.goodAt, true
}

func (f *fakeConjur) Adopt(_ context.Context, c credential.Credential) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.adoptErr != nil {
		return f.adoptErr
	}
	f.adopted = append(f.adopted, c)
	if f.onAdopt != nil {
		f.onAdopt()
	}
	return nil
}

// Ping answers as Get does when it fails (err), else nil.
func (f *fakeConjur) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Status reports a fixed status, with the last credential adopted.
func (f *fakeConjur) Status() conjur.Status {
	st := conjur.Status{Login: "host/swarm/conjur-plugin", CredentialSource: "none",
		LastContact: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), LastURL: "https://conjur.test",
		URLs: []conjur.URLStatus{{URL: "https://conjur.test", Healthy: true}}}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.login != "" {
		st.Login = f.login
	}
	if len(f.urls) > 0 {
		st.URLs, st.LastURL = nil, f.urls[0]
		for _, u := range f.urls {
			st.URLs = append(st.URLs, conjur.URLStatus{URL: u, Healthy: true})
		}
	}
	if n := len(f.adopted); n > 0 {
		st.CredentialSource, st.CredentialFingerprint = "handoff", f.adopted[n-1].Fingerprint()
	}
	return st
}

func (f *fakeConjur) lastRef() conjur.Ref {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.refs) == 0 {
		return conjur.Ref{}
	}
	return f.refs[len(f.refs)-1]
}

// adoptions is how many credentials were adopted.
func (f *fakeConjur) adoptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.adopted)
}

type fakePolicyStatus struct{}

func (fakePolicyStatus) Status() policy.StoreStatus {
	return policy.StoreStatus{Path: "/etc/conjur-swarm/mapping/mapping.yml", Hash: "sha256:abc", Rules: 2,
		LoadedAt: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)}
}
