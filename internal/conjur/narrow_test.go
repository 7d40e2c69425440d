package conjur

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// fakeConjurBatch is a batch endpoint with Conjur's whole-batch refusals: a
// batch holding a missing variable is refused 404 naming the first one (in
// request order), else one holding a forbidden variable is refused 403
// naming none. It records every request's ids.
type fakeConjurBatch struct {
	missing, forbidden map[string]bool

	mu   sync.Mutex
	reqs [][]string
}

func (f *fakeConjurBatch) record(ids []string) {
	f.mu.Lock()
	f.reqs = append(f.reqs, slices.Clone(ids))
	f.mu.Unlock()
}

func (f *fakeConjurBatch) batch(ctx context.Context, ids []string) (map[string]result, bool) {
	f.record(ids)
	for _, id := range ids {
		if f.missing[id] {
			return map[string]result{id: {err: &Error{Code: errcode.NotFound, Variable: id}}}, true
		}
	}
	for _, id := range ids {
		if f.forbidden[id] {
			return nil, true
		}
	}
	out := map[string]result{}
	for _, id := range ids {
		out[id] = result{data: []byte("value:" + id)}
	}
	return out, false
}

func (f *fakeConjurBatch) one(ctx context.Context, id string) result {
	f.record([]string{id})
	switch {
	case f.missing[id]:
		return result{err: &Error{Code: errcode.NotFound, Variable: id}}
	case f.forbidden[id]:
		return result{err: &Error{Code: errcode.Forbidden, Variable: id}}
	}
	return result{data: []byte("value:" + id)}
}

// rounds is, for id, how many requests carried it: the requests that carry
// one id are sent one after another, so this is the round trips its Get
// waited for.
func (f *fakeConjurBatch) rounds(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.reqs {
		if slices.Contains(r, id) {
			n++
		}
	}
	return n
}

// narrowAll runs narrow over ids and returns every answer, failing the test
// if an id is answered twice or not at all.
func narrowAll(t *testing.T, f *fakeConjurBatch, ids []string) map[string]result {
	t.Helper()
	var mu sync.Mutex
	got := map[string]result{}
	narrow(t.Context(), ids, f.batch, f.one, unboundedSink(func(answers map[string]result) {
		mu.Lock()
		defer mu.Unlock()
		for id, r := range answers {
			if _, dup := got[id]; dup {
				t.Errorf("%s answered twice", id)
			}
			got[id] = r
		}
	}))
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			t.Errorf("%s not answered", id)
		}
	}
	return got
}

// unboundedSink is an answerSink without a window: every request of a
// narrowing goes out at once.
type unboundedSink func(answers map[string]result)

func (s unboundedSink) deliver(answers map[string]result) { s(answers) }

func (s unboundedSink) another(context.Context) func(map[string]result) { return s }

func narrowIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("apps/v%03d", i)
	}
	return ids
}

// Every variable of a refused batch is answered once: the failing ones with
// their own error, the others with their value.
func TestNarrowReportsEachFailureAlone(t *testing.T) {
	ids := narrowIDs(40)
	f := &fakeConjurBatch{
		missing:   map[string]bool{ids[3]: true, ids[21]: true},
		forbidden: map[string]bool{ids[9]: true, ids[30]: true},
	}
	got := narrowAll(t, f, ids)
	for _, id := range ids {
		want := errcode.Code("")
		switch {
		case f.missing[id]:
			want = errcode.NotFound
		case f.forbidden[id]:
			want = errcode.Forbidden
		}
		if c := CodeOf(got[id].err); c != want {
			t.Errorf("%s: code %q, want %q", id, c, want)
		}
		if want == "" && string(got[id].data) != "value:"+id {
			t.Errorf("%s = %q", id, got[id].data)
		}
	}
	t.Logf("%d requests for 40 ids with 4 failing", len(f.reqs))
}

// A batch that is not refused costs one request.
func TestNarrowCleanBatchIsOneRequest(t *testing.T) {
	f := &fakeConjurBatch{}
	narrowAll(t, f, narrowIDs(50))
	if len(f.reqs) != 1 {
		t.Errorf("%d requests, want 1", len(f.reqs))
	}
}

// k missing variables in a batch of n cost O(log n) rounds, not k: the
// refused batch is split and its parts are narrowed in parallel, so no Get,
// of a legitimate variable or a missing one, waits for more than
// 1 + ceil(log2 n) round trips, however many variables are missing.
func TestNarrowFindsManyMissingInLogRounds(t *testing.T) {
	for _, k := range []int{1, 4, 16, 63} {
		t.Run(fmt.Sprintf("ok/%d of 64 missing", k), func(t *testing.T) {
			ids := narrowIDs(64)
			f := &fakeConjurBatch{missing: map[string]bool{}}
			for i := range k {
				f.missing[ids[(i*37)%64]] = true // spread over the batch
			}
			got := narrowAll(t, f, ids)
			worst := 0
			for _, id := range ids {
				if f.missing[id] != (CodeOf(got[id].err) == errcode.NotFound) {
					t.Errorf("%s: %+v", id, got[id].err)
				}
				worst = max(worst, f.rounds(id))
			}
			t.Logf("%d requests, at most %d round trips for one Get", len(f.reqs), worst)
			if worst > 7 {
				t.Errorf("a Get waited for %d round trips, want at most 1 + log2(64) = 7", worst)
			}
		})
	}
}

// One missing variable holds the others for one extra round trip only.
func TestNarrowOneMissingCostsOneExtraRound(t *testing.T) {
	ids := narrowIDs(100)
	f := &fakeConjurBatch{missing: map[string]bool{ids[57]: true}}
	narrowAll(t, f, ids)
	for _, id := range ids {
		if n := f.rounds(id); n > 2 {
			t.Errorf("%s waited for %d round trips, want at most 2", id, n)
		}
	}
}
