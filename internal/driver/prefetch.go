package driver

import (
	"sync"
	"time"
)

// Prefetch: swarmkit asks for a task's secrets one after another, from the
// same node session, with the same TaskID. At a task's first Get the driver
// fetches, in the same batch as that Get's own variable, the other variables
// earlier tasks of the same service were allowed, and keeps each for this
// task's later Gets. The rules (each tested in prefetch_test.go):
//   - the policy decides every Get exactly as without prefetch; prefetch only
//     changes when the fetch happens;
//   - a variable is prefetched only if the same service was allowed it
//     before, and is served only to a Get whose decision names the same
//     rule, variable and version, of the same TaskID and service, at most
//     once, within ttl of the fetch; then it is dropped;
//   - memory is bounded (tasks, values and bytes); values are wiped on a
//     handoff and on Close.

// Bounds of the prefetch store.
const (
	DefaultPrefetchTTL    = 5 * time.Second
	prefetchMaxTasks      = 4096     // tasks holding prefetched values at once
	prefetchMaxBytes      = 32 << 20 // bytes of prefetched values at once
	prefetchMaxPerTask    = 16       // variables prefetched for one task
	prefetchMaxServices   = 4096     // services whose allowed variables are remembered
	prefetchMaxPerService = 16       // variables remembered per service
)

// prefetchKey is what a Get's decision must match to be served a
// prefetched value.
type prefetchKey struct {
	rule, variable string
	version        int
	identity       string // the Conjur identity the rule chose (per-request mode); "" otherwise
}

// taskKey names a task of a service.
type taskKey struct{ task, service string }

// prefetchEntry holds what was prefetched for one task.
type prefetchEntry struct {
	expires time.Time
	values  map[prefetchKey][]byte
}

// prefetcher is the per-task store and what each service was allowed. Its
// lock is a leaf.
type prefetcher struct {
	ttl time.Duration
	now func() time.Time

	mu        sync.Mutex
	allowed   map[string][]prefetchKey // service ID -> variables it was served, in order learned
	tasks     map[taskKey]*prefetchEntry
	bytes     int
	nextSweep time.Time
}

func newPrefetcher(ttl time.Duration, now func() time.Time) *prefetcher {
	if ttl <= 0 {
		ttl = DefaultPrefetchTTL
	}
	return &prefetcher{ttl: ttl, now: now, allowed: map[string][]prefetchKey{}, tasks: map[taskKey]*prefetchEntry{}}
}

// take returns the value prefetched for task under k, and drops it: a
// prefetched value is served once.
func (p *prefetcher) take(t taskKey, k prefetchKey) ([]byte, bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.tasks[t]
	if e == nil {
		return nil, false
	}
	if !now.Before(e.expires) {
		p.dropLocked(t, e)
		return nil, false
	}
	data, ok := e.values[k]
	if !ok {
		return nil, false
	}
	delete(e.values, k)
	p.bytes -= len(data)
	if len(e.values) == 0 {
		delete(p.tasks, t)
	}
	return data, true
}

// plan starts task t's prefetch at a Get for k: it returns the other
// variables t's service was allowed before, and marks t as started so that
// its later Gets do not plan again; nil when t has started already (within
// ttl), its service taught nothing else, or the store is full.
func (p *prefetcher) plan(t taskKey, k prefetchKey) []prefetchKey {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(now)
	if e := p.tasks[t]; e != nil && now.Before(e.expires) {
		return nil
	}
	var out []prefetchKey
	for _, a := range p.allowed[t.service] {
		if a != k && len(out) < prefetchMaxPerTask {
			out = append(out, a)
		}
	}
	if len(out) == 0 || len(p.tasks) >= prefetchMaxTasks {
		return nil
	}
	p.tasks[t] = &prefetchEntry{expires: now.Add(p.ttl), values: map[prefetchKey][]byte{}}
	return out
}

// keep stores data, prefetched for task t under k, if t's prefetch is still
// current and the store has room. It takes data over.
func (p *prefetcher) keep(t taskKey, k prefetchKey, data []byte) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.tasks[t]
	if e == nil || !now.Before(e.expires) || p.bytes+len(data) > prefetchMaxBytes {
		clear(data)
		return
	}
	if old, ok := e.values[k]; ok {
		p.bytes -= len(old)
		clear(old)
	}
	e.values[k] = data
	p.bytes += len(data)
}

// learn records that service was served k under its rule.
func (p *prefetcher) learn(service string, k prefetchKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	known, ok := p.allowed[service]
	if !ok && len(p.allowed) >= prefetchMaxServices {
		return
	}
	for _, a := range known {
		if a == k {
			return
		}
	}
	if len(known) >= prefetchMaxPerService {
		known = known[1:] // the oldest goes
	}
	p.allowed[service] = append(known, k)
}

// wipe zeroes and drops every prefetched value (a handoff, Close). What
// services were allowed is kept: it holds no secret, and every Get is
// decided again anyway.
func (p *prefetcher) wipe() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, e := range p.tasks {
		p.dropLocked(t, e)
	}
}

// dropLocked zeroes and drops task t's entry; p.mu is held.
func (p *prefetcher) dropLocked(t taskKey, e *prefetchEntry) {
	for _, v := range e.values {
		p.bytes -= len(v)
		clear(v)
	}
	delete(p.tasks, t)
}

// sweepLocked drops expired entries, at most once per ttl; p.mu is held.
func (p *prefetcher) sweepLocked(now time.Time) {
	if now.Before(p.nextSweep) {
		return
	}
	p.nextSweep = now.Add(p.ttl)
	for t, e := range p.tasks {
		if !now.Before(e.expires) {
			p.dropLocked(t, e)
		}
	}
}
