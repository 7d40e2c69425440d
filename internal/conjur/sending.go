package conjur

import (
	"context"
	"slices"
	"time"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// The fetches in progress: their request slots, answers and round trips.

// slot is the request slot a fetch holds (held false: versions, which are
// not windowed): full says its Gets waited long for it, so that its round
// trip may grow the window, short that they waited so little that the
// window is wider than they need, alone that it was the only request in
// flight, so that its round trip is Conjur's latency without our load.
type slot struct{ held, full, short, alone bool }

// send fetches the calls' ids under ctx and answers each call as its answer
// arrives. With a slot held, the first delivery, which comes when the
// fetch's first request returns, gives the window its round trip, frees the
// slot and sends the queue, under the same lock as the answers it carries:
// a Get woken by them already finds the slot free, and a batch that is being
// narrowed (its first request was refused) does not hold the Gets queued
// behind it; its further requests take slots of their own (another). A
// fetch that panics frees it too.
func (b *batcher) send(ctx context.Context, calls []*call, sl slot) {
	r := &sending{b: b, calls: calls, left: len(calls), slot: sl}
	if sl.held {
		r.sent = b.now()
	}
	ids := make([]string, len(calls))
	for i, cl := range calls {
		ids[i] = cl.key.id
	}
	if len(calls) > 1 {
		r.byID = make(map[string]*call, len(calls))
		for _, cl := range calls {
			r.byID[cl.key.id] = cl
		}
	}
	returned := false
	defer func() {
		if !returned { // the fetch panicked: free the calls and the slot, then let the panic go on
			b.mu.Lock()
			r.finishAllLocked(result{err: errPanicked})
			b.mu.Unlock()
		}
	}()
	b.src.fetch(ctx, ids, calls[0].key.version, r)
	returned = true
	b.mu.Lock()
	// A fetcher that left an id out: say so rather than let its Gets hang.
	r.finishAllLocked(result{err: errLeftOut})
	b.mu.Unlock()
}

// sending is one fetch of calls in progress.
type sending struct {
	b        *batcher
	calls    []*call
	byID     map[string]*call // nil for a single call
	left     int              // calls not answered yet (under b.mu)
	slot     slot             // the request slot of the fetch's first request
	sent     time.Time        // when the first request went out (with a slot)
	released bool
}

// deliver answers the calls of answers, releasing the fetch with the last.
func (r *sending) deliver(answers map[string]result) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	r.answerLocked(answers)
	if !r.released && r.slot.held {
		r.b.win.observe(r.sent, r.b.now(), r.slot, overloaded(answers))
	}
	r.releaseLocked()
	if r.left == 0 {
		r.finishAllLocked(result{})
	}
}

// another takes a request slot for one more request of the fetch, waiting
// while the window is full (the narrowing of a refused batch goes at the
// window's pace, ahead of the queued Gets, whose calls are younger). If ctx
// ends first it returns without one: the request then fails at once on
// ctx. The func it returns delivers the request's answers, gives the window
// its round trip and frees the slot.
func (r *sending) another(ctx context.Context) func(map[string]result) {
	b := r.b
	b.mu.Lock()
	var wait chan struct{}
	if b.active < b.win.size() { // then no one waits (dispatchLocked serves waiters first)
		b.active++
	} else {
		wait = make(chan struct{})
		b.waiters = append(b.waiters, wait)
	}
	sl := slot{held: true, full: wait != nil || b.active >= b.win.size(), alone: wait == nil && b.active == 1}
	b.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			b.mu.Lock()
			i := slices.Index(b.waiters, wait)
			if i >= 0 {
				b.waiters = slices.Delete(b.waiters, i, i+1)
			}
			b.mu.Unlock()
			if i >= 0 {
				return r.deliver
			} // else a slot was handed over as ctx ended: use it and free it
		}
	}
	sent := b.now()
	return func(answers map[string]result) {
		b.mu.Lock()
		defer b.mu.Unlock()
		r.answerLocked(answers)
		b.win.observe(sent, b.now(), sl, overloaded(answers))
		b.active--
		b.dispatchLocked()
		if r.left == 0 {
			r.finishAllLocked(result{})
		}
	}
}

// overloaded reports whether answers say that Conjur is overloaded: it
// answered 5xx or 429, or did not answer in time.
func overloaded(answers map[string]result) bool {
	for _, res := range answers {
		if c := CodeOf(res.err); c == errcode.Unavailable || c == errcode.Timeout {
			return true
		}
	}
	return false
}

// answerLocked answers the calls of answers; b.mu is held.
func (r *sending) answerLocked(answers map[string]result) {
	for id, res := range answers {
		cl := r.calls[0]
		if r.byID != nil {
			cl = r.byID[id]
		}
		if cl != nil && cl.key.id == id && r.b.finishLocked(cl, res) {
			r.left--
		}
	}
}

// finishAllLocked answers every call not answered yet with res and
// releases the fetch; b.mu is held.
func (r *sending) finishAllLocked(res result) {
	for _, cl := range r.calls {
		r.b.finishLocked(cl, res)
	}
	r.releaseLocked()
}

// releaseLocked frees the fetch's slot, once, and sends the queue. b.mu is
// held.
func (r *sending) releaseLocked() {
	if r.released || !r.slot.held {
		return
	}
	r.released = true
	r.b.active--
	r.b.dispatchLocked()
}

var errLeftOut = &Error{Code: errcode.Internal, Msg: "the plugin's Conjur client lost track of this fetch (see the plugin log): retry, and report it if it persists"}
