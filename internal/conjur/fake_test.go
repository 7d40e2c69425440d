package conjur

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeFetcher is a hand-written fetcher with failure switches: it answers
// each id with "value:<id>", fails the ids in fail with their error and
// every id with failAll when set. Each fetch announces its ids on started
// (when set) and, with gate set, waits for gate to be closed, honouring its
// ctx.
type fakeFetcher struct {
	gate    chan struct{}
	started chan []string
	root    context.Context // the Client's context, as the session's errors see it (nil: none)

	mu       sync.Mutex
	fail     map[string]error
	failAll  error
	fetches  [][]string // the ids of every fetch, in the order they began
	versions []int
}

func (f *fakeFetcher) fetch(ctx context.Context, ids []string, version int, to answerSink) {
	f.mu.Lock()
	f.fetches = append(f.fetches, slices.Clone(ids))
	f.versions = append(f.versions, version)
	f.mu.Unlock()
	if f.started != nil {
		f.started <- slices.Clone(ids)
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			root := f.root
			if root == nil {
				root = context.Background()
			}
			out := map[string]result{}
			for _, id := range ids {
				out[id] = result{err: contextError(root, ctx, id, nil, time.Second)}
			}
			to.deliver(out)
			return
		}
	}
	f.mu.Lock()
	out := map[string]result{}
	for _, id := range ids {
		switch {
		case f.failAll != nil:
			out[id] = result{err: f.failAll}
		case f.fail[id] != nil:
			out[id] = result{err: f.fail[id]}
		default:
			out[id] = result{data: []byte("value:" + id), url: "fake"}
		}
	}
	f.mu.Unlock()
	to.deliver(out)
}

// requests returns the ids of every fetch so far.
func (f *fakeFetcher) requests() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.fetches)
}

// newTestBatcher is a batcher over f, closed when the test ends.
func newTestBatcher(t *testing.T, f fetcher, cfg Config) *batcher {
	t.Helper()
	cfg.Account = "dev"
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 5 * time.Second
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	life := newLifecycle()
	b := newBatcher(cfg, f, life, nil)
	t.Cleanup(func() {
		if life.markClosed() {
			b.close()
			life.stop()
		}
	})
	return b
}

// batcherState is a snapshot of a batcher's queue.
func batcherState(b *batcher) (active, pending int, joined map[string]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	joined = map[string]int{}
	for k, cl := range b.inflight {
		joined[k.id] = cl.joined
	}
	return b.active, len(b.pending), joined
}
