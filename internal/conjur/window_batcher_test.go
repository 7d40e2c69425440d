package conjur

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// fakeClock is the batcher's clock in these tests: time moves only when the
// test moves it (next), and a sleeper wakes when it reaches its time.
type fakeClock struct {
	poke chan struct{} // something changed: a sleeper arrived or a request was answered (buffered)

	mu       sync.Mutex
	t        time.Time
	sleepers []fakeSleeper
}

type fakeSleeper struct {
	until time.Time
	wake  chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Unix(1_000_000, 0), poke: make(chan struct{}, 1)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) nudge() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

func (c *fakeClock) sleep(d time.Duration) {
	c.mu.Lock()
	s := fakeSleeper{until: c.t.Add(d), wake: make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.mu.Unlock()
	c.nudge()
	<-s.wake
}

func (c *fakeClock) asleep() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

// next moves the time to the earliest sleeper's and wakes every sleeper due.
func (c *fakeClock) next() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sleepers) == 0 {
		return
	}
	first := c.sleepers[0].until
	for _, s := range c.sleepers {
		if s.until.Before(first) {
			first = s.until
		}
	}
	c.t = first
	kept := c.sleepers[:0]
	for _, s := range c.sleepers {
		if s.until.After(c.t) {
			kept = append(kept, s)
		} else {
			close(s.wake)
		}
	}
	c.sleepers = kept
}

// slowConjur is a fake Conjur whose round trip the test sets (on the fake
// clock), which answers every variable, or fails all with UNAVAILABLE (a
// 503) when overloaded is set, and counts the requests it holds at once.
// With workers set it queues: a request that finds n others held waits
// latency x ceil((n+1)/workers), as a server with that many workers would.
type slowConjur struct {
	clock *fakeClock

	mu         sync.Mutex
	latency    time.Duration
	workers    int
	spread     bool // the n-th request takes latency x (1 + (n mod 8)/8): answers come back spread out, not in waves
	overloaded bool
	cur, most  int
	ids        int // variables of the requests it holds
	requests   int
}

func (s *slowConjur) set(latency time.Duration, overloaded bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency, s.overloaded, s.most, s.requests, s.workers, s.spread = latency, overloaded, 0, 0, 0, false
}

func (s *slowConjur) fetch(ctx context.Context, ids []string, version int, to answerSink) {
	s.mu.Lock()
	s.cur++
	s.ids += len(ids)
	s.requests++
	s.most = max(s.most, s.cur)
	latency, overloaded := s.latency, s.overloaded
	if s.workers > 0 {
		latency *= time.Duration((s.cur + s.workers - 1) / s.workers)
	}
	if s.spread {
		latency += latency * time.Duration(s.requests%8) / 8
	}
	s.mu.Unlock()
	s.clock.sleep(latency)
	out := map[string]result{}
	for _, id := range ids {
		if overloaded {
			out[id] = result{err: &Error{Code: errcode.Unavailable, Msg: "503"}}
		} else {
			out[id] = result{data: []byte("value:" + id)}
		}
	}
	s.mu.Lock()
	s.cur--
	s.ids -= len(ids)
	s.mu.Unlock()
	to.deliver(out)
	s.clock.nudge()
}

// stats is what a phase of the model saw.
type stats struct {
	window, most, requests, gets, failed int
}

// perNode runs the per-node model on b: nodes send gets Gets each, one after
// another (distinct variables), while the test moves the fake clock each
// time every node's Get is either in a request waiting for Conjur's answer
// or queued in the batcher (settled), so that the outcome does not depend on
// how the goroutines are scheduled.
func perNode(t *testing.T, b *batcher, conj *slowConjur, phase string, nodes, gets int) stats {
	t.Helper()
	var failed sync.Map
	var live atomic.Int64
	live.Store(int64(nodes))
	done := make(chan struct{})
	var wg sync.WaitGroup
	for n := range nodes {
		wg.Go(func() {
			defer conj.clock.nudge()
			defer live.Add(-1)
			for i := range gets {
				if o := b.get(t.Context(), refKey{id: fmt.Sprintf("apps/%s/n%02d/g%03d", phase, n, i)}); o.err != nil {
					failed.Store(fmt.Sprint(n, i), o.err)
				}
			}
		})
	}
	settled := func() bool {
		b.mu.Lock()
		active, pending := b.active, len(b.pending)
		b.mu.Unlock()
		conj.mu.Lock()
		ids := conj.ids
		conj.mu.Unlock()
		asleep := conj.clock.asleep()
		return asleep > 0 && asleep == active && int64(ids+pending) == live.Load()
	}
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			st := stats{window: windowOf(b), gets: nodes * gets}
			conj.mu.Lock()
			st.most, st.requests = conj.most, conj.requests
			conj.mu.Unlock()
			failed.Range(func(any, any) bool { st.failed++; return true })
			return st
		case <-conj.clock.poke:
		case <-time.After(time.Millisecond): // a Get that queued pokes no one: look again
		}
		for settled() {
			conj.clock.next()
		}
	}
}

// windowModel is a batcher with a window of the ceiling over a slowConjur,
// both on one fake clock.
func windowModel(t *testing.T, ceiling int) (*batcher, *slowConjur) {
	clock := newFakeClock()
	conj := &slowConjur{clock: clock}
	b := newTestBatcher(t, conj, Config{MaxInFlight: ceiling})
	b.now = clock.now
	return b, conj
}

func activeOf(b *batcher) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active
}

func windowOf(b *batcher) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.win.size()
}

// The window follows Conjur's latency: it grows to the ceiling while the
// round trip stays flat and Gets wait; past what Conjur answers without
// queueing (a Conjur of 4 workers) it stays where the round trip stays
// within twice the baseline, batching the rest; a Conjur slower for a
// reason not ours (20 ms whatever the load: requests sent alone see it
// too) does not hold it down; it grows again when the latency falls back,
// and goes to 1 while Conjur answers 503. Conjur never holds more requests
// than the window allows.
func TestWindowFollowsConjursLatency(t *testing.T) {
	b, conj := windowModel(t, 12)
	ms := time.Millisecond

	conj.set(2*ms, false)
	flat := perNode(t, b, conj, "flat", 16, 25)
	t.Logf("flat 2 ms: %+v", flat)
	if flat.window != 12 || flat.most <= windowStart || flat.most > 12 || flat.failed > 0 {
		t.Errorf("flat latency: window %d, at most %d requests at once, %d failed; want the ceiling 12, more than %d at once, at most 12, none failed",
			flat.window, flat.most, flat.failed, windowStart)
	}

	conj.set(2*ms, false)
	conj.workers = 4
	queue := perNode(t, b, conj, "queue", 16, 50)
	t.Logf("4 workers of 2 ms: %+v", queue)
	if queue.window > 9 || queue.window < 2 || queue.failed > 0 || 4*queue.requests >= 3*queue.gets {
		t.Errorf("a Conjur that queues past 4 requests: window %d, %d failed, %d requests for %d Gets; want 2 to 9 (8 answered within twice the baseline, and the window may just have grown one past it before its next cut), none failed, Gets batched (fewer than 3 requests for 4 Gets)",
			queue.window, queue.failed, queue.requests, queue.gets)
	}

	conj.set(20*ms, false)
	slow := perNode(t, b, conj, "slow", 16, 50)
	t.Logf("slow 20 ms: %+v", slow)
	if slow.window < 6 || slow.failed > 0 {
		t.Errorf("Conjur 10x slower whatever the load: window %d, %d failed; want it grown back to at least 6, none failed", slow.window, slow.failed)
	}

	conj.set(2*ms, false)
	back := perNode(t, b, conj, "back", 16, 25)
	t.Logf("back to 2 ms: %+v", back)
	if back.window < 6 || back.failed > 0 {
		t.Errorf("latency back to the baseline: window %d, %d failed; want it grown to at least 6, none failed", back.window, back.failed)
	}

	conj.set(2*ms, true)
	over := perNode(t, b, conj, "over", 16, 5)
	t.Logf("503s: %+v", over)
	if over.window != 1 || over.failed != over.gets {
		t.Errorf("Conjur answering 503: window %d, %d of %d Gets failed; want 1, all", over.window, over.failed, over.gets)
	}
}

// Gets that arrive one after another (the per-node model) against answers
// that come back spread out wait for a slot about a round trip / window:
// the window settles where that wait is about windowWaitShare of a round
// trip (4 to 8 slots), the rest of the Gets batched, rather than growing to
// the ceiling and sending every Get alone; 512 Gets at once (a burst) go
// out in batches of many.
func TestWindowSettlesWhereGetsWaitLittle(t *testing.T) {
	b, conj := windowModel(t, 32)
	conj.set(2*time.Millisecond, false)
	conj.spread = true
	st := perNode(t, b, conj, "spread", 20, 100)
	t.Logf("20 nodes, answers spread out: %+v", st)
	if st.window < 2 || st.window > 2/windowWaitShare+1 || st.failed > 0 || 2*st.requests > st.gets {
		t.Errorf("20 nodes: window %d, %d failed, %d requests for %d Gets; want 2 to %d, none failed, at most a request for 2 Gets",
			st.window, st.failed, st.requests, st.gets, int(2/windowWaitShare+1))
	}
	conj.set(2*time.Millisecond, false)
	conj.spread = true
	burst := perNode(t, b, conj, "burst", 512, 8)
	t.Logf("512 at once: %+v", burst)
	if burst.failed > 0 || 20*burst.requests > burst.gets {
		t.Errorf("a burst of 512: %d failed, %d requests for %d Gets; want none failed, at most a request for 20 Gets", burst.failed, burst.requests, burst.gets)
	}
}

// A window that Gets never fill does not grow: two nodes asking one after
// another leave it at its start, however flat the latency.
func TestWindowGrowsOnlyWhenFull(t *testing.T) {
	b, conj := windowModel(t, 12)
	conj.set(2*time.Millisecond, false)
	st := perNode(t, b, conj, "few", 2, 50)
	if st.window != windowStart || st.failed > 0 || st.most > 2 {
		t.Errorf("two nodes: window %d, %d failed, at most %d requests at once; want the start %d, none failed, at most 2", st.window, st.failed, st.most, windowStart)
	}

	// Batches that leave the window room (a bundle's members, one caller)
	// do not grow it either.
	f := &fakeFetcher{}
	b = newTestBatcher(t, f, Config{MaxInFlight: 12})
	b.now = func() time.Time { return time.Unix(1_000_000, 0) } // round trips of 0: neither baseline nor cut
	for i := range 30 {
		b.getMany(t.Context(), []refKey{{id: fmt.Sprintf("apps/b%02d/x", i)}, {id: fmt.Sprintf("apps/b%02d/y", i)}})
	}
	if w := windowOf(b); w != windowStart || len(f.requests()) != 30 {
		t.Errorf("30 bundles one after another: window %d after %d requests; want the start %d after 30", w, len(f.requests()), windowStart)
	}
}

// A narrowing request waits for a slot while the window is full, takes the
// one that frees before any queued Get, and gives up waiting when its
// context ends (the request then fails on it, holding no slot).
func TestAnotherWaitsForTheWindow(t *testing.T) {
	f := &fakeFetcher{gate: make(chan struct{}), started: make(chan []string, 4)}
	b := newTestBatcher(t, f, Config{MaxInFlight: 1})
	held := make(chan outcome, 1)
	go func() { held <- b.get(t.Context(), refKey{id: "apps/held"}) }()
	<-f.started // the window's one slot is taken
	r := &sending{b: b}
	granted := make(chan func(map[string]result), 1)
	go func() { granted <- r.another(t.Context()) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 1 }, "another to wait")
	queued := make(chan outcome, 1)
	go func() { queued <- b.get(t.Context(), refKey{id: "apps/queued"}) }()
	waitFor(t, func() bool { _, p, _ := batcherState(b); return p == 1 }, "a Get to queue")
	select {
	case <-granted:
		t.Fatal("another returned while the window was full")
	default:
	}
	f.gate <- struct{}{} // the held fetch answers: its slot goes to the waiting narrowing, not the queue
	deliver := <-granted
	if a, p, _ := batcherState(b); a != 1 || p != 1 {
		t.Fatalf("after the slot freed: %d slots taken, %d queued; want 1 (the narrowing's) and 1", a, p)
	}
	deliver(map[string]result{})
	close(f.gate)
	if o := <-queued; o.err != nil {
		t.Errorf("the queued Get: %v", o.err)
	}
	if o := <-held; o.err != nil {
		t.Errorf("the held Get: %v", o.err)
	}

	// A full window and a context that ends: no slot, no waiter left.
	b2 := newTestBatcher(t, &fakeFetcher{gate: make(chan struct{})}, Config{MaxInFlight: 1})
	b2.mu.Lock()
	b2.active = 1
	b2.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r2 := &sending{b: b2}
	r2.another(ctx)
	b2.mu.Lock()
	defer b2.mu.Unlock()
	if b2.active != 1 || len(b2.waiters) != 0 {
		t.Errorf("after giving up: %d slots taken, %d waiting; want 1 (not its own), 0", b2.active, len(b2.waiters))
	}
}

// The requests that narrow a refused batch hold slots of the window (issue
// 21 item 12): a batch of 32 missing variables costs about 2n requests, and
// with a window of 2 each of them goes out holding a slot and never more
// than 2 are in flight. Before, every request after the first went out
// without a slot, as many at once as the halving allowed.
func TestNarrowingIsBoundedByTheWindow(t *testing.T) {
	ids := narrowIDs(32)
	conj := &fakeConjurBatch{missing: map[string]bool{}}
	for _, id := range ids {
		conj.missing[id] = true
	}
	var b *batcher
	var mu sync.Mutex
	cur, most := 0, 0
	var outside []string
	var late []string
	enter := func(ctx context.Context, id string) func() {
		b.mu.Lock()
		active, size := b.active, b.win.size()
		b.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		cur++
		most = max(most, cur)
		if active < 1 || active > size {
			outside = append(outside, fmt.Sprintf("%s with %d slots taken of %d", id, active, size))
		}
		if ctx.Err() != nil {
			late = append(late, id)
		}
		return func() {
			mu.Lock()
			defer mu.Unlock()
			cur--
		}
	}
	batch := func(ctx context.Context, ids []string) (map[string]result, bool) {
		defer enter(ctx, ids[0])()
		return conj.batch(ctx, ids)
	}
	one := func(ctx context.Context, id string) result {
		defer enter(ctx, id)()
		return conj.one(ctx, id)
	}
	b = newTestBatcher(t, fetcherFunc(func(ctx context.Context, ids []string, version int, to answerSink) {
		narrow(ctx, ids, batch, one, to)
	}), Config{MaxInFlight: 2})
	keys := make([]refKey, len(ids))
	for i, id := range ids {
		keys[i] = refKey{id: id}
	}
	for i, o := range b.getMany(t.Context(), keys) {
		if CodeOf(o.err) != errcode.NotFound {
			t.Errorf("%s: %v, want NOT_FOUND", ids[i], o.err)
		}
	}
	t.Logf("%d requests for %d missing variables, at most %d at once", len(conj.reqs), len(ids), most)
	if len(outside) > 0 {
		t.Errorf("%d of %d requests went out without a slot of the window, e.g. %s", len(outside), len(conj.reqs), outside[0])
	}
	if most > 2 {
		t.Errorf("%d requests in flight at once, want at most the window's 2", most)
	}
	if len(late) > 0 {
		t.Errorf("%d requests went out after their deadline (waiting for a slot that never came), e.g. %s", len(late), late[0])
	}
	if a := activeOf(b); a != 0 {
		t.Errorf("%d slots still taken after every Get was answered", a)
	}
}
