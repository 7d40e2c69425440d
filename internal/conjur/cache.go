package conjur

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// getter is what the value cache wraps: the batcher.
type getter interface {
	get(ctx context.Context, key refKey) outcome
	getMany(ctx context.Context, keys []refKey) []outcome
}

// valueCache is the optional value cache (CacheTTL, off at 0) as a layer
// over the batcher: a Get it can answer from memory never reaches the
// batcher, and every value the batcher returns is kept for the TTL under the
// credential generation its fetch started under. A value is served only
// under that generation (a handoff makes the values of the identity before
// unusable), never to a NoCache ref, and is dropped when Conjur refuses the
// variable (403, 404). Its lock is a leaf.
type valueCache struct {
	next getter
	ttl  time.Duration
	now  func() time.Time
	gen  func() uint64 // the credential generation now in use

	mu      sync.Mutex
	entries map[refKey]cacheEntry
}

type cacheEntry struct {
	data    []byte
	url     string
	at      time.Time // when Conjur answered it
	expires time.Time
	gen     uint64 // credential generation it was fetched under; a handoff makes it unusable
}

func newValueCache(next getter, ttl time.Duration, now func() time.Time, gen func() uint64) *valueCache {
	return &valueCache{next: next, ttl: ttl, now: now, gen: gen, entries: map[refKey]cacheEntry{}}
}

func (vc *valueCache) get(ctx context.Context, ref Ref) outcome {
	key := refKey{ref.ID, ref.Version}
	if vc.ttl <= 0 {
		return vc.next.get(ctx, key)
	}
	if v, ok := vc.lookup(ref); ok {
		return outcome{v: v}
	}
	o := vc.next.get(ctx, key)
	vc.record(key, o)
	return o
}

// getMany answers refs from memory where it can and fetches the others
// together; the i-th outcome answers refs[i].
func (vc *valueCache) getMany(ctx context.Context, refs []Ref) []outcome {
	out := make([]outcome, len(refs))
	keys := make([]refKey, 0, len(refs))
	idx := make([]int, 0, len(refs))
	for i, ref := range refs {
		if v, ok := vc.lookup(ref); ok {
			out[i] = outcome{v: v}
			continue
		}
		keys = append(keys, refKey{ref.ID, ref.Version})
		idx = append(idx, i)
	}
	if len(keys) == 0 {
		return out
	}
	for j, o := range vc.next.getMany(ctx, keys) {
		out[idx[j]] = o
		vc.record(keys[j], o)
	}
	return out
}

// lookup returns a copy of the value cached for ref, if it may be served.
func (vc *valueCache) lookup(ref Ref) (Value, bool) {
	if vc.ttl <= 0 || ref.NoCache {
		return Value{}, false
	}
	key := refKey{ref.ID, ref.Version}
	gen, now := vc.gen(), vc.now()
	vc.mu.Lock()
	defer vc.mu.Unlock()
	e, hit := vc.entries[key]
	if !hit {
		return Value{}, false
	}
	if e.gen == gen && now.Before(e.expires) {
		return Value{Data: bytes.Clone(e.data), Cached: true, URL: e.url, fetchedAt: e.at}, true
	}
	delete(vc.entries, key)
	return Value{}, false
}

// record keeps a fetched value, or drops the one kept when Conjur now
// refuses the variable.
func (vc *valueCache) record(key refKey, o outcome) {
	if vc.ttl <= 0 {
		return
	}
	switch {
	case o.err == nil:
		now := vc.now()
		e := cacheEntry{data: bytes.Clone(o.v.Data), url: o.v.URL, at: now, expires: now.Add(vc.ttl), gen: o.gen}
		vc.mu.Lock()
		vc.entries[key] = e
		if len(vc.entries)%256 == 0 {
			vc.sweepLocked()
		}
		vc.mu.Unlock()
	case CodeOf(o.err) == errcode.Forbidden || CodeOf(o.err) == errcode.NotFound:
		vc.mu.Lock()
		delete(vc.entries, key) // Conjur now refuses it: a value cached before must not be served
		vc.mu.Unlock()
	}
}

func (vc *valueCache) sweepLocked() {
	now := vc.now()
	for k, e := range vc.entries {
		if !now.Before(e.expires) {
			delete(vc.entries, k)
		}
	}
}
