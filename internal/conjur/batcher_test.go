package conjur

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// getAsync runs b.get for id in a goroutine; the outcome arrives on the channel.
func getAsync(ctx context.Context, b *batcher, id string) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() { ch <- b.get(ctx, refKey{id, 0}) }()
	return ch
}

// Gets of one variable while its fetch is out share that fetch, and say so.
func TestBatcherCoalescesIdenticalGets(t *testing.T) {
	f := &fakeFetcher{gate: make(chan struct{}), started: make(chan []string, 1)}
	b := newTestBatcher(t, f, Config{})
	first := getAsync(t.Context(), b, "apps/a")
	<-f.started
	var others []<-chan outcome
	for range 4 {
		others = append(others, getAsync(t.Context(), b, "apps/a"))
	}
	waitFor(t, func() bool { _, _, j := batcherState(b); return j["apps/a"] == 4 }, "four Gets joined")
	close(f.gate)
	if o := <-first; o.err != nil || string(o.v.Data) != "value:apps/a" || o.v.Coalesced {
		t.Errorf("starter: %v, %+v; want the value, not coalesced", o.v, o.err)
	}
	for _, ch := range others {
		if o := <-ch; o.err != nil || string(o.v.Data) != "value:apps/a" || !o.v.Coalesced {
			t.Errorf("joiner: %v, %+v; want the value, coalesced", o.v, o.err)
		}
	}
	if got := f.requests(); len(got) != 1 {
		t.Errorf("fetches %v, want one", got)
	}
}

// Gets that find a free slot go out at once, alone; with every slot taken,
// Gets of other variables gather in the queue and go out together as one
// fetch when a slot frees.
func TestBatcherGathersGetsWhileSlotsAreTaken(t *testing.T) {
	f := &fakeFetcher{gate: make(chan struct{}), started: make(chan []string, 8)}
	b := newTestBatcher(t, f, Config{MaxInFlight: 2})
	var chans []<-chan outcome
	chans = append(chans, getAsync(t.Context(), b, "apps/a")) // idle: sent inline, slot 1
	if got := <-f.started; !slices.Equal(got, []string{"apps/a"}) {
		t.Fatalf("first fetch %v", got)
	}
	chans = append(chans, getAsync(t.Context(), b, "apps/b")) // slot 2, at once
	if got := <-f.started; !slices.Equal(got, []string{"apps/b"}) {
		t.Fatalf("second fetch %v", got)
	}
	for _, id := range []string{"apps/c", "apps/d", "apps/e"} {
		chans = append(chans, getAsync(t.Context(), b, id))
	}
	waitFor(t, func() bool { a, p, _ := batcherState(b); return a == 2 && p == 3 }, "three Gets queued behind two batches")
	close(f.gate)
	for i, ch := range chans {
		if o := <-ch; o.err != nil || !strings.HasPrefix(string(o.v.Data), "value:apps/") {
			t.Errorf("Get %d: %v, %+v", i, o.v, o.err)
		}
	}
	got := f.requests()
	for _, r := range got {
		slices.Sort(r) // the three queued Gets arrive in any order
	}
	want := [][]string{{"apps/a"}, {"apps/b"}, {"apps/c", "apps/d", "apps/e"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("fetches (-want +got):\n%s", d)
	}
}

// A full queue goes out at once, cut at MaxBatch.
func TestBatcherCutsBatchesAtMaxBatch(t *testing.T) {
	f := &fakeFetcher{}
	b := newTestBatcher(t, f, Config{MaxBatch: 3})
	keys := make([]refKey, 7)
	for i := range keys {
		keys[i] = refKey{fmt.Sprintf("apps/v%d", i), 0}
	}
	for i, o := range b.getMany(t.Context(), keys) {
		if o.err != nil || string(o.v.Data) != "value:"+keys[i].id {
			t.Errorf("%s: %v, %+v", keys[i].id, o.v, o.err)
		}
	}
	var sizes []int
	for _, r := range f.requests() {
		sizes = append(sizes, len(r))
	}
	slices.Sort(sizes)
	if d := cmp.Diff([]int{1, 3, 3}, sizes); d != "" {
		t.Errorf("batch sizes (-want +got):\n%s", d)
	}
}

// getMany on an idle batcher sends its latest-version refs as one fetch and
// each versioned ref alone.
func TestBatcherGetManySendsOneBatch(t *testing.T) {
	f := &fakeFetcher{}
	b := newTestBatcher(t, f, Config{})
	keys := []refKey{{"apps/a", 0}, {"apps/b", 0}, {"apps/c", 3}, {"apps/d", 0}, {"apps/a", 0}}
	out := b.getMany(t.Context(), keys)
	for i, o := range out {
		if o.err != nil || string(o.v.Data) != "value:"+keys[i].id {
			t.Errorf("%v: %v, %+v", keys[i], o.v, o.err)
		}
	}
	if !out[4].v.Coalesced {
		t.Error("the repeated ref did not share the first one's fetch")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var batch, single int
	for i, ids := range f.fetches {
		switch {
		case f.versions[i] == 3 && slices.Equal(ids, []string{"apps/c"}):
			single++
		case f.versions[i] == 0 && slices.Equal(ids, []string{"apps/a", "apps/b", "apps/d"}):
			batch++
		default:
			t.Errorf("unexpected fetch %v at version %d", ids, f.versions[i])
		}
	}
	if batch != 1 || single != 1 {
		t.Errorf("%d batches and %d single fetches, want 1 and 1", batch, single)
	}
}

// A failure switch fails every Get of the batch, each naming its variable.
func TestBatcherFailureNamesEachVariable(t *testing.T) {
	f := &fakeFetcher{failAll: &Error{Code: errcode.Unavailable, Msg: "down"}}
	b := newTestBatcher(t, f, Config{})
	keys := []refKey{{"apps/a", 0}, {"apps/b", 0}}
	for i, o := range b.getMany(t.Context(), keys) {
		var e *Error
		if !asError(o.err, &e) || e.Code != errcode.Unavailable || e.Variable != keys[i].id || len(o.v.Data) != 0 {
			t.Errorf("%s: %v, %+v; want UNAVAILABLE naming it", keys[i].id, o.v, o.err)
		}
	}
}

// A Get whose fetch does not end fails TIMEOUT at its call's deadline; a
// Get whose caller cancels fails CANCELED while the others still wait.
func TestBatcherDeadlineAndCancel(t *testing.T) {
	f := &fakeFetcher{gate: make(chan struct{}), started: make(chan []string, 1)}
	b := newTestBatcher(t, f, Config{FetchTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	canceled := getAsync(ctx, b, "apps/a")
	<-f.started
	joined := getAsync(t.Context(), b, "apps/a")
	waitFor(t, func() bool { _, _, j := batcherState(b); return j["apps/a"] == 1 }, "a second Get joined")
	cancel()
	if o := <-canceled; CodeOf(o.err) != errcode.Canceled {
		t.Errorf("canceled caller: %+v, want CANCELED", o.err)
	}
	if o := <-joined; CodeOf(o.err) != errcode.Timeout || !o.v.Coalesced {
		t.Errorf("joined caller: %v, %+v; want TIMEOUT, coalesced", o.v, o.err)
	}
}

// Close fails queued and in-flight Gets UNAVAILABLE and waits for the
// fetches it canceled (goleak checks that none is left).
func TestBatcherClose(t *testing.T) {
	life := newLifecycle()
	f := &fakeFetcher{gate: make(chan struct{}), started: make(chan []string, 8), root: life.ctx}
	b := newBatcher(Config{Account: "dev", FetchTimeout: 5 * time.Second, MaxInFlight: 2, MaxBatch: 100}, f, life, nil)
	var chans []<-chan outcome
	chans = append(chans, getAsync(context.Background(), b, "apps/a"))
	<-f.started
	chans = append(chans, getAsync(context.Background(), b, "apps/b"))
	<-f.started
	chans = append(chans, getAsync(context.Background(), b, "apps/c"))
	waitFor(t, func() bool { _, p, _ := batcherState(b); return p == 1 }, "a Get queued")
	life.markClosed()
	b.close()
	life.stop()
	for i, ch := range chans {
		if o := <-ch; CodeOf(o.err) != errcode.Unavailable || !strings.Contains(o.err.Error(), "shutting down") {
			t.Errorf("Get %d after Close: %+v, want UNAVAILABLE (shutting down)", i, o.err)
		}
	}
	if o := b.get(t.Context(), refKey{"apps/d", 0}); CodeOf(o.err) != errcode.Unavailable {
		t.Errorf("Get after Close: %+v, want UNAVAILABLE", o.err)
	}
}

// A fetcher that answers only part of the ids does not leave the others
// waiting for ever.
func TestBatcherLeftOutIdsFail(t *testing.T) {
	partial := fetcherFunc(func(ctx context.Context, ids []string, version int, to answerSink) {
		to.deliver(map[string]result{ids[0]: {data: []byte("x")}})
	})
	b := newTestBatcher(t, partial, Config{})
	out := b.getMany(t.Context(), []refKey{{"apps/a", 0}, {"apps/b", 0}})
	if out[0].err != nil || CodeOf(out[1].err) != errcode.Internal {
		t.Errorf("got %+v, %+v; want a value and INTERNAL", out[0].err, out[1].err)
	}
}

type fetcherFunc func(ctx context.Context, ids []string, version int, to answerSink)

func (f fetcherFunc) fetch(ctx context.Context, ids []string, version int, to answerSink) {
	f(ctx, ids, version, to)
}

// Answers delivered while a narrowed batch is still out reach their Gets at
// once, and the batch's slot frees with the first part (the first request
// has returned), so a batch being narrowed does not hold the queue.
func TestBatcherDeliversPartsAsTheyArrive(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	parts := fetcherFunc(func(ctx context.Context, ids []string, version int, to answerSink) {
		to.deliver(map[string]result{ids[0]: {data: []byte("first")}})
		<-release
		rest := map[string]result{}
		for _, id := range ids[1:] {
			rest[id] = result{data: []byte("later")}
		}
		mu.Lock()
		defer mu.Unlock()
		to.deliver(rest)
	})
	b := newTestBatcher(t, parts, Config{})
	done := make(chan []outcome, 1)
	go func() { done <- b.getMany(context.Background(), []refKey{{"apps/b", 0}, {"apps/a", 0}}) }()
	// The first part answers its Get while the second is held back.
	waitFor(t, func() bool {
		_, _, j := batcherState(b)
		_, b := j["apps/b"]
		_, a := j["apps/a"]
		return a && !b
	}, "the first part answered")
	if a, _, _ := batcherState(b); a != 0 {
		t.Errorf("%d slots in use after the first part, want 0", a)
	}
	close(release)
	out := <-done
	if string(out[0].v.Data) != "first" || string(out[1].v.Data) != "later" {
		t.Errorf("got %q, %q", out[0].v.Data, out[1].v.Data)
	}
	if a, _, _ := batcherState(b); a != 0 {
		t.Errorf("%d slots in use after the last part, want 0", a)
	}
}
