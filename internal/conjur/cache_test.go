package conjur

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// fakeGetter is the layer under the value cache: it answers every key with
// "value:<id>" (or err when set), under generation gen, and counts calls.
type fakeGetter struct {
	mu    sync.Mutex
	err   error
	gen   uint64
	calls int
}

func (f *fakeGetter) get(ctx context.Context, key refKey) outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return outcome{err: f.err, gen: f.gen}
	}
	return outcome{v: Value{Data: []byte("value:" + key.id), URL: "fake"}, gen: f.gen}
}

func (f *fakeGetter) getMany(ctx context.Context, keys []refKey) []outcome {
	out := make([]outcome, len(keys))
	for i, k := range keys {
		out[i] = f.get(ctx, k)
	}
	return out
}

// cacheFixture is a value cache over a fakeGetter with a clock and a
// credential generation the test moves.
type cacheFixture struct {
	next *fakeGetter
	vc   *valueCache
	now  time.Time
	gen  uint64
}

func newCacheFixture(ttl time.Duration) *cacheFixture {
	fx := &cacheFixture{next: &fakeGetter{}, now: time.Unix(1_700_000_000, 0)}
	fx.vc = newValueCache(fx.next, ttl, func() time.Time { return fx.now }, func() uint64 { return fx.gen })
	return fx
}

func TestValueCacheLayer(t *testing.T) {
	ctx := context.Background()
	ref := Ref{ID: "apps/a"}
	tests := []struct {
		name       string
		ttl        time.Duration
		between    func(fx *cacheFixture) // after the first Get
		second     Ref
		wantCached bool
	}{
		{name: "ok/served within the TTL", ttl: time.Minute, second: ref, wantCached: true},
		{name: "ok/off at TTL 0", ttl: 0, second: ref},
		{name: "ok/not served after the TTL", ttl: time.Minute, between: func(fx *cacheFixture) { fx.now = fx.now.Add(time.Minute) }, second: ref},
		{name: "ok/not served to NoCache", ttl: time.Minute, second: Ref{ID: "apps/a", NoCache: true}},
		{name: "ok/not served after a handoff", ttl: time.Minute, between: func(fx *cacheFixture) { fx.gen++ }, second: ref},
		{name: "ok/not served once Conjur refuses it", ttl: time.Minute, between: func(fx *cacheFixture) {
			fx.next.err = &Error{Code: errcode.NotFound}
			fx.vc.get(ctx, Ref{ID: "apps/a", NoCache: true})
			fx.next.err = nil
		}, second: ref},
		{name: "ok/fetched under an older generation: not served", ttl: time.Minute, between: func(fx *cacheFixture) {
			fx.gen, fx.next.gen = 1, 0 // a handoff while the fetch was out
			fx.vc.get(ctx, Ref{ID: "apps/a", NoCache: true})
		}, second: ref},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newCacheFixture(tt.ttl)
			first := fx.vc.get(ctx, ref)
			if first.err != nil || first.v.Cached {
				t.Fatalf("first Get: %v, %+v", first.v, first.err)
			}
			first.v.Data[0] = 'X' // the caller's copy: the cache must not share it
			if tt.between != nil {
				tt.between(fx)
			}
			calls := fx.next.calls
			o := fx.vc.get(ctx, tt.second)
			if o.err != nil || o.v.Cached != tt.wantCached || string(o.v.Data) != "value:apps/a" {
				t.Fatalf("second Get: %v %q, %+v; want cached=%t", o.v, o.v.Data, o.err, tt.wantCached)
			}
			if reached := fx.next.calls > calls; reached == tt.wantCached {
				t.Errorf("the layer below was reached: %t, want %t", reached, !tt.wantCached)
			}
		})
	}
}

// getMany answers what it can from memory and sends only the others down.
func TestValueCacheGetMany(t *testing.T) {
	fx := newCacheFixture(time.Minute)
	ctx := context.Background()
	fx.vc.get(ctx, Ref{ID: "apps/a"})
	out := fx.vc.getMany(ctx, []Ref{{ID: "apps/a"}, {ID: "apps/b"}, {ID: "apps/a", NoCache: true}})
	if !out[0].v.Cached || out[1].v.Cached || out[2].v.Cached {
		t.Errorf("cached flags %t %t %t, want true false false", out[0].v.Cached, out[1].v.Cached, out[2].v.Cached)
	}
	if fx.next.calls != 3 {
		t.Errorf("%d fetches below, want 3 (the first Get, apps/b, the NoCache ref)", fx.next.calls)
	}
}
