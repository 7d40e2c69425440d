package driver

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Prefetch: swarmkit asks for a task's secrets one after another, from the
// same node session, with the same TaskID. At a task's first Get the driver
// fetches, in the same batch as that Get's own variable, the other variables
// earlier tasks of the same service were allowed, and keeps each for this
// task's later Gets. The rules (each tested in prefetch_test.go):
//   - the policy decides every Get exactly as without prefetch; prefetch only
//     changes when the fetch happens, and fetches each variable with the ref
//     the service's own Get used (its value cache and stale_if_error
//     flags: a prefetched value is a last good value like any other);
//   - a variable is prefetched only if the same service was allowed it
//     before under the mapping in force, and is served only to a Get whose
//     decision names the same mapping, rule, variable and version, of the
//     same TaskID and service, at most once, within ttl of the fetch; then
//     it is dropped;
//   - a prefetched value is not served once a later answer of Conjur for
//     the same variable and version differs from it (a rotation seen by
//     any fetch), and a variable Conjur refuses (403, 404) on any fetch
//     leaves every service's prefetch set and every task's values;
//   - memory is bounded (tasks, values and bytes); values are wiped (bytes
//     zeroed) on a handoff, on Close, when the mapping changes, and when
//     dropped.

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
// prefetched value: the mapping (by its hash) that decided, the rule, the
// variable, the version and the Conjur identity the rule chose.
type prefetchKey struct {
	mapping, rule, variable string
	version                 int
	identity                string // the Conjur identity the rule chose (per-request mode); "" otherwise
}

// varKey names one variable version as one identity reads it: Conjur's
// answers a prefetched value must still match.
type varKey struct {
	id       string
	version  int
	identity string
}

func (k prefetchKey) varKey() varKey { return varKey{k.variable, k.version, k.identity} }

// refVarKey is ref's varKey.
func refVarKey(ref conjur.Ref) varKey {
	k := varKey{id: ref.ID, version: ref.Version}
	if ref.Workload != nil {
		k.identity = ref.Workload.Subject
	}
	return k
}

// taskKey names a task of a service.
type taskKey struct{ task, service string }

// learned is a variable a service was served: what its Gets' decisions
// name, and the ref they fetched it with.
type learned struct {
	key prefetchKey
	ref conjur.Ref
}

// heldValue is one prefetched value and the stamp of Conjur's answer it is.
type heldValue struct {
	data  []byte
	stamp uint64
}

// prefetchEntry holds what was prefetched for one task.
type prefetchEntry struct {
	expires time.Time
	values  map[prefetchKey]heldValue
}

// answerStamp is the latest answer of Conjur the driver saw for a variable
// version of which values are held, and how many are held.
type answerStamp struct {
	stamp uint64
	held  int
}

// prefetcher is the per-task store and what each service was allowed. Its
// lock is a leaf.
type prefetcher struct {
	ttl  time.Duration
	now  func() time.Time
	seed maphash.Seed // stamps of answers: a keyed hash, never shown

	mu        sync.Mutex
	mapping   string               // the mapping hash of the latest Get; another one drops everything
	allowed   map[string][]learned // service ID -> variables it was served, in order learned
	tasks     map[taskKey]*prefetchEntry
	latest    map[varKey]*answerStamp // for each variable version held
	bytes     int
	nextSweep time.Time
}

func newPrefetcher(ttl time.Duration, now func() time.Time) *prefetcher {
	if ttl <= 0 {
		ttl = DefaultPrefetchTTL
	}
	return &prefetcher{ttl: ttl, now: now, seed: maphash.MakeSeed(),
		allowed: map[string][]learned{}, tasks: map[taskKey]*prefetchEntry{}, latest: map[varKey]*answerStamp{}}
}

// take returns the value prefetched for task under k, and drops it: a
// prefetched value is served once, and only while it is the latest answer
// of Conjur the driver saw for its variable.
func (p *prefetcher) take(t taskKey, k prefetchKey) ([]byte, bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mappingLocked(k.mapping)
	e := p.tasks[t]
	if e == nil {
		return nil, false
	}
	if !now.Before(e.expires) {
		p.dropLocked(t, e)
		return nil, false
	}
	v, ok := e.values[k]
	if !ok {
		return nil, false
	}
	current := p.latest[k.varKey()].stamp == v.stamp
	p.removeLocked(e, k)
	if len(e.values) == 0 {
		delete(p.tasks, t)
	}
	if !current {
		clear(v.data)
		return nil, false
	}
	return v.data, true
}

// plan starts task t's prefetch at a Get for k: it returns the other
// variables t's service was allowed before, and marks t as started so that
// its later Gets do not plan again; nil when t has started already (within
// ttl), its service taught nothing else, or the store is full. A task of a
// service that has taught nothing yet (its first) is marked too, with
// nothing to prefetch: its later Gets would otherwise fetch again, in their
// batches, the variables its own earlier Gets were just served.
func (p *prefetcher) plan(t taskKey, k prefetchKey) []learned {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mappingLocked(k.mapping)
	p.sweepLocked(now)
	if e := p.tasks[t]; e != nil && now.Before(e.expires) {
		return nil
	}
	known := p.allowed[t.service]
	var out []learned
	for _, a := range known {
		if a.key != k && len(out) < prefetchMaxPerTask {
			out = append(out, a)
		}
	}
	if len(known) > 0 && len(out) == 0 || len(p.tasks) >= prefetchMaxTasks {
		return nil
	}
	p.tasks[t] = &prefetchEntry{expires: now.Add(p.ttl)}
	return out
}

// keep stores data, prefetched for task t under k, if t's prefetch is still
// current and the store has room. It takes data over. A fresh answer of
// Conjur (not the value cache's copy) is the latest one seen for its
// variable.
func (p *prefetcher) keep(t taskKey, k prefetchKey, data []byte, fresh bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.tasks[t]
	if e == nil || k.mapping != p.mapping || !now.Before(e.expires) || p.bytes+len(data) > prefetchMaxBytes {
		clear(data)
		return
	}
	if old, ok := e.values[k]; ok {
		p.removeLocked(e, k)
		clear(old.data)
	}
	if e.values == nil {
		e.values = map[prefetchKey]heldValue{}
	}
	stamp := maphash.Bytes(p.seed, data)
	st := p.latest[k.varKey()]
	if st == nil {
		st = &answerStamp{stamp: stamp}
		p.latest[k.varKey()] = st
	}
	if fresh {
		st.stamp = stamp
	}
	st.held++
	e.values[k] = heldValue{data: data, stamp: stamp}
	p.bytes += len(data)
}

// answered is told every answer of Conjur the driver gets, on every path:
// a value that differs from the ones held for the same variable version
// makes them unservable; a refusal (403, 404) drops the variable from
// every service's prefetch set and every task's values.
func (p *prefetcher) answered(ref conjur.Ref, v conjur.Value, err error) {
	switch {
	case err == nil:
		if v.Cached {
			return // the cache's copy is an answer seen before
		}
		stamp := maphash.Bytes(p.seed, v.Data)
		p.mu.Lock()
		if st := p.latest[refVarKey(ref)]; st != nil {
			st.stamp = stamp
		}
		p.mu.Unlock()
	case conjur.CodeOf(err) == errcode.Forbidden || conjur.CodeOf(err) == errcode.NotFound:
		p.refused(refVarKey(ref))
	}
}

// refused drops variable k.id, at every version, from every service's
// prefetch set and every task's values, for the identity Conjur refused.
func (p *prefetcher) refused(k varKey) {
	gone := func(key prefetchKey) bool { return key.variable == k.id && key.identity == k.identity }
	p.mu.Lock()
	defer p.mu.Unlock()
	for svc, known := range p.allowed {
		kept := known[:0]
		for _, a := range known {
			if !gone(a.key) {
				kept = append(kept, a)
			}
		}
		clear(known[len(kept):])
		if len(kept) == 0 {
			delete(p.allowed, svc)
		} else {
			p.allowed[svc] = kept
		}
	}
	for t, e := range p.tasks {
		for key, v := range e.values {
			if gone(key) {
				p.removeLocked(e, key)
				clear(v.data)
			}
		}
		if len(e.values) == 0 {
			delete(p.tasks, t)
		}
	}
}

// learn records that service was served k, fetched with ref, under the
// mapping in force.
func (p *prefetcher) learn(service string, k prefetchKey, ref conjur.Ref) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k.mapping != p.mapping {
		return // decided under a mapping that is no longer in force
	}
	known, ok := p.allowed[service]
	if !ok && len(p.allowed) >= prefetchMaxServices {
		return
	}
	for _, a := range known {
		if a.key == k {
			return
		}
	}
	if len(known) >= prefetchMaxPerService {
		known = known[1:] // the oldest goes
	}
	ref.Workload = nil // each task's own is set when it is prefetched
	p.allowed[service] = append(known, learned{key: k, ref: ref})
}

// wipe zeroes and drops every prefetched value (a handoff, Close). What
// services were allowed is kept: it holds no secret, and every Get is
// decided again anyway.
func (p *prefetcher) wipe() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wipeLocked()
}

func (p *prefetcher) wipeLocked() {
	for t, e := range p.tasks {
		p.dropLocked(t, e)
	}
}

// mappingLocked drops every value and everything learned when a Get was
// decided by another mapping than the one before; p.mu is held.
func (p *prefetcher) mappingLocked(mapping string) {
	if mapping == p.mapping {
		return
	}
	p.mapping = mapping
	p.wipeLocked()
	clear(p.allowed)
}

// dropLocked zeroes and drops task t's entry; p.mu is held.
func (p *prefetcher) dropLocked(t taskKey, e *prefetchEntry) {
	for k, v := range e.values {
		p.removeLocked(e, k)
		clear(v.data)
	}
	delete(p.tasks, t)
}

// removeLocked takes the value under k out of entry e, without zeroing it
// (take hands it out); p.mu is held.
func (p *prefetcher) removeLocked(e *prefetchEntry, k prefetchKey) {
	v := e.values[k]
	delete(e.values, k)
	p.bytes -= len(v.data)
	if st := p.latest[k.varKey()]; st != nil {
		if st.held--; st.held <= 0 {
			delete(p.latest, k.varKey())
		}
	}
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
