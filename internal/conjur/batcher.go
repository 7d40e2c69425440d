package conjur

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// fetcher fetches a set of variables: the session, or a fake in tests. It
// answers each id exactly once through to, which it gives the answers of
// each request as that request returns (a narrowed batch answers
// in several parts), and returns once all are answered. With version 0 the
// ids are the latest versions; with a version the batcher gives one id.
type fetcher interface {
	fetch(ctx context.Context, ids []string, version int, to answerSink)
}

// answerSink takes the answers of one request of a fetch. A fetch that
// needs more requests than its first (the narrowing of a refused batch)
// takes a request slot for each from another, which returns the func that
// delivers that request's answers and frees its slot. A deliver func reads
// answers before it returns and keeps no reference to the map (a single
// answer's map is pooled: deliverOne).
type answerSink interface {
	deliver(answers map[string]result)
	another(ctx context.Context) (deliver func(answers map[string]result))
}

// batcher turns Gets into fetches: concurrent Gets of the same (ID, Version)
// share one call (coalescing). A Get of a latest version that finds one of
// the request slots free is sent at once, alone, from its own goroutine
// (inline); Gets that find every slot taken gather in a queue, which goes
// out as one fetch of several ids (a batch) as soon as a slot frees. So
// while Conjur has spare capacity no Get waits for another, and past it a
// burst costs one request per slot round trip. The number of slots is the
// adaptive window (window.go), at most MaxInFlight; every request to Conjur
// of a latest version holds one, the narrowing of a refused batch included
// (its requests take freed slots before the queue does). Every call has its
// own deadline, FetchTimeout from its creation.
//
// Locks: mu guards everything below it. It is never held while the fetcher
// runs; it may be held while a goroutine is spawned (the lifecycle's lock).
type batcher struct {
	cfg  Config // FetchTimeout, MaxInFlight, MaxBatch and Account (for the query size) are used
	src  fetcher
	life *lifecycle
	gen  func() uint64 // the credential generation, recorded on each call for the value cache

	now func() time.Time // the window's clock (time.Now; tests give a fake)

	mu       sync.Mutex
	inflight map[refKey]*call
	pending  []*call         // calls waiting for a slot, oldest first
	waiters  []chan struct{} // narrowing requests waiting for a slot, oldest first; served before pending, so never waiting while a slot is free
	active   int             // request slots in use (at most win.size(), unless the window just shrank)
	win      *window
}

func newBatcher(cfg Config, src fetcher, life *lifecycle, gen func() uint64) *batcher {
	return &batcher{cfg: cfg, src: src, life: life, gen: gen, now: time.Now, inflight: map[refKey]*call{}, win: newWindow(cfg.MaxInFlight)}
}

const (
	maxIDLength = 1024
	// maxBatchQuery bounds the escaped variable_ids query of one batch request,
	// well under common URL limits (Conjur's Puma allows 10 KiB of query).
	maxBatchQuery = 7000
)

type refKey struct {
	id      string
	version int
}

type result struct {
	data []byte
	url  string
	err  error
}

// outcome is what a Get gets from the batcher: its value or error, and the
// credential generation its call started under (the value cache files the
// value under it).
type outcome struct {
	v   Value
	err error
	gen uint64
}

// call is one fetch of one (ID, Version), shared by every Get that asks for
// it while it is in flight. Its own deadline (FetchTimeout from creation) is
// independent of any one caller's.
type call struct {
	key    refKey
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	res    result
	joined int       // Gets that joined it after it started (under batcher.mu)
	gen    uint64    // the credential generation when it started
	alone  bool      // sent inline as the only request in flight
	queued time.Time // when it joined the queue (the window's clock)
}

// get fetches one variable. No timer of its own: the call this Get starts
// or joins ends within FetchTimeout of its creation, which is no later than
// this Get's own FetchTimeout. Every fetch runs under its call's deadline,
// and a call waiting for a batch slot waits only for batches of calls
// created before it (the queue is first in, first out), so their deadlines
// free the slot in time and it then fails at once if its own has passed.
// ctx is still honoured for an earlier deadline or a cancellation.
func (b *batcher) get(ctx context.Context, key refKey) outcome {
	cl, coalesced, inline := b.start(ctx, key)
	if inline {
		return b.runInline(ctx, cl)
	}
	return b.wait(ctx, cl, coalesced)
}

// getMany fetches keys under one FetchTimeout; the i-th outcome answers
// keys[i]. The requests coalesce like get's, and those for latest versions
// go out together, as one batch when a slot is free.
func (b *batcher) getMany(ctx context.Context, keys []refKey) []outcome {
	out := make([]outcome, len(keys))
	ctx, cancel := context.WithTimeout(ctx, b.cfg.FetchTimeout)
	defer cancel()
	calls := make([]*call, len(keys))
	shared := make([]bool, len(keys))
	b.mu.Lock()
	for i, key := range keys {
		calls[i], shared[i] = b.startLocked(key)
	}
	b.dispatchLocked()
	b.mu.Unlock()
	for i, cl := range calls {
		out[i] = b.wait(ctx, cl, shared[i])
	}
	return out
}

// inlineSlack is how much earlier than the shared fetch's own deadline a
// caller's deadline may fall and the caller still run the fetch itself.
const inlineSlack = 10 * time.Millisecond

// start returns the call to wait for: an existing one (coalesced) or a new
// one, sent at once when a slot is free, else queued. A new call that finds
// a free slot and no queue is handed back with inline set, holding the
// slot, for the caller to send itself (runInline), when the caller's
// deadline (ctx) is not much earlier than the call's.
func (b *batcher) start(ctx context.Context, key refKey) (cl *call, coalesced, inline bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cl, coalesced = b.startLocked(key)
	if coalesced || key.version != 0 {
		return cl, coalesced, false
	}
	if b.active < b.win.size() && len(b.pending) == 1 && b.pending[0] == cl && callerOutlasts(ctx, cl) && b.life.enter() {
		b.pending = b.pending[:0]
		b.active++
		cl.alone = b.active == 1
		return cl, false, true
	}
	b.dispatchLocked()
	return cl, false, false
}

// callerOutlasts reports whether ctx's deadline, if any, falls no more than
// inlineSlack before cl's.
func callerOutlasts(ctx context.Context, cl *call) bool {
	d, ok := ctx.Deadline()
	if !ok {
		return true
	}
	cd, _ := cl.ctx.Deadline()
	return !d.Before(cd.Add(-inlineSlack))
}

// startLocked joins the call in flight for key or creates one: queued when
// it may be batched, else started alone. b.mu is held.
func (b *batcher) startLocked(key refKey) (cl *call, coalesced bool) {
	if cl := b.inflight[key]; cl != nil {
		cl.joined++
		return cl, true
	}
	cl = &call{key: key, done: make(chan struct{})}
	if b.gen != nil {
		cl.gen = b.gen()
	}
	cl.ctx, cl.cancel = context.WithTimeout(b.life.ctx, b.cfg.FetchTimeout)
	b.inflight[key] = cl
	if key.version != 0 || strings.Contains(key.id, ",") || b.cfg.MaxBatch == 1 {
		if !b.life.spawn(func() { b.send(cl.ctx, []*call{cl}, slot{}) }) {
			b.finishLocked(cl, result{err: errClosed})
		}
		return cl, false
	}
	if b.life.isClosed() {
		b.finishLocked(cl, result{err: errClosed})
		return cl, false
	}
	cl.queued = b.now()
	b.pending = append(b.pending, cl)
	return cl, false
}

// runInline sends cl, which start took as the only request of an idle
// batcher, from the caller's goroutine: no goroutine to start and no
// hand-off to wake, which on a busy machine costs more than the request's
// own CPU. Gets of the same variable that arrive meanwhile join it as they
// would a batch, and other Gets gather for the next batch as they would
// while a batch is in flight (the call holds a batch slot).
//
// If the caller gives up while no other Get has joined, the fetch is
// abandoned (it is no longer shared) and the caller returns at once. If
// others have joined, the caller stays until the fetch ends, at most the
// fetch timeout: start runs a fetch inline only for a caller whose deadline
// is within inlineSlack of the fetch's, so only a cancellation (the plugin
// stopping, or Docker hanging up) keeps a caller past its end.
func (b *batcher) runInline(ctx context.Context, cl *call) outcome {
	defer b.life.done() // start counted it (enter): Close waits for it like a goroutine's
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.inflight[cl.key] == cl && cl.joined == 0 {
			delete(b.inflight, cl.key)
			cl.cancel()
		}
	})
	defer stop()
	b.send(cl.ctx, []*call{cl}, slot{held: true, alone: cl.alone})
	if ctx.Err() != nil {
		return outcome{err: b.contextError(ctx, cl.key.id), gen: cl.gen}
	}
	return b.wait(ctx, cl, false)
}

func (b *batcher) wait(ctx context.Context, cl *call, coalesced bool) outcome {
	select {
	case <-cl.done:
	case <-ctx.Done():
		return outcome{err: b.contextError(ctx, cl.key.id), gen: cl.gen}
	case <-cl.ctx.Done():
		// A batch runs until its latest call's deadline: one that went out
		// with later calls ends here, at its own (finishLocked cancels and
		// closes under b.mu, so a finished call is told apart).
		b.mu.Lock()
		select {
		case <-cl.done:
		default:
			b.mu.Unlock()
			if ctx.Err() != nil {
				return outcome{err: b.contextError(ctx, cl.key.id), gen: cl.gen}
			}
			return outcome{v: Value{Coalesced: coalesced}, err: b.contextError(cl.ctx, cl.key.id), gen: cl.gen}
		}
		b.mu.Unlock()
	}
	if cl.res.err != nil {
		return outcome{v: Value{Coalesced: coalesced}, err: cl.res.err, gen: cl.gen} // no data; says whether the failure was shared
	}
	return outcome{v: Value{Data: bytes.Clone(cl.res.data), Coalesced: coalesced, URL: cl.res.url}, gen: cl.gen}
}

func (b *batcher) contextError(ctx context.Context, id string) *Error {
	return contextError(b.life.ctx, ctx, id, nil, b.cfg.FetchTimeout)
}

// finishLocked publishes a call's result, unless it has one; b.mu is held.
// It reports whether it did.
func (b *batcher) finishLocked(cl *call, res result) bool {
	select {
	case <-cl.done:
		return false
	default:
	}
	if b.inflight[cl.key] == cl {
		delete(b.inflight, cl.key)
	}
	if res.err != nil {
		var e *Error
		if errors.As(res.err, &e) && e.Variable == "" {
			res.err = e.withVariable(cl.key.id)
		}
	}
	cl.res = res
	cl.cancel()
	close(cl.done)
	return true
}

var errPanicked = &Error{Code: errcode.Internal, Msg: "the plugin's Conjur client failed unexpectedly while fetching (see the plugin log): retry, and report it if it persists"}

// dispatchLocked hands the free slots to the narrowing requests waiting for
// one, then sends the queue, oldest first, as batches of up to MaxBatch ids
// (and maxBatchQuery of query) while a slot is free. Calls that find none
// wait, gathering into the next batch. b.mu is held.
func (b *batcher) dispatchLocked() {
	for len(b.waiters) > 0 && b.active < b.win.size() {
		b.active++
		close(b.waiters[0])
		b.waiters = b.waiters[1:]
	}
	for len(b.pending) > 0 && b.active < b.win.size() {
		n, size := 0, 0
		for n < len(b.pending) && n < b.cfg.MaxBatch {
			l := len(url.QueryEscape(b.cfg.Account+":variable:"+b.pending[n].key.id)) + 3
			if n > 0 && size+l > maxBatchQuery {
				break
			}
			size += l
			n++
		}
		batch := append([]*call(nil), b.pending[:n]...)
		b.pending = append(b.pending[:0], b.pending[n:]...)
		b.active++
		long, short := b.win.waited(b.now().Sub(batch[0].queued))
		sl := slot{held: true, full: long, short: short, alone: b.active == 1}
		if !b.life.spawn(func() { b.runBatch(batch, sl) }) {
			b.active--
			for _, cl := range batch {
				b.finishLocked(cl, result{err: errClosed})
			}
		}
	}
}

// runBatch sends batch under the latest of its calls' deadlines.
func (b *batcher) runBatch(batch []*call, sl slot) {
	deadline := time.Time{}
	for _, cl := range batch {
		if d, _ := cl.ctx.Deadline(); d.After(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(b.life.ctx, deadline)
	defer cancel()
	b.send(ctx, batch, sl)
}

// close fails every queued call with UNAVAILABLE; the lifecycle is closed.
func (b *batcher) close() {
	b.mu.Lock()
	pending := b.pending
	b.pending = nil
	for _, cl := range pending {
		b.finishLocked(cl, result{err: errClosed})
	}
	b.mu.Unlock()
}
