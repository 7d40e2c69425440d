package conjur

import (
	"context"
	"strings"
	"sync"
)

// batchFunc sends ids as one batch request. It answers every id (refused
// false), or reports that the batch failed as a whole because of some of its
// variables (refused true), answering at most the variables the refusal
// named.
type batchFunc func(ctx context.Context, ids []string) (answers map[string]result, refused bool)

// oneFunc fetches one variable alone.
type oneFunc func(ctx context.Context, id string) result

// narrow fetches ids with batch and answers each exactly once through to,
// with the answers of each request as it returns. When a batch is refused
// as a whole because of some of its variables, the variable the refusal
// names (a 404 names the first missing one) is answered, and the rest is
// split in halves that are narrowed in parallel, down to single fetches:
// every other variable still arrives, each failure is reported alone, and k
// failing variables among n cost at most 1 + ceil(log2 n) round trips (not
// k one after another) while the window allows, a part that holds none of
// them being answered as soon as its request returns. The first request
// goes under the fetch's own slot (to.deliver answers it); every further
// one takes a slot of the window first (to.another), so that a refused batch
// of n variables, up to about 2n requests, never has more requests in
// flight than the window.
func narrow(ctx context.Context, ids []string, batch batchFunc, one oneFunc, to answerSink) {
	if len(ids) == 1 {
		deliverOne(to.deliver, ids[0], one(ctx, ids[0]))
		return
	}
	res, refused := batch(ctx, ids)
	to.deliver(res) // even empty: it tells the batcher this request has returned
	if refused {
		narrowRest(ctx, ids, res, batch, one, to)
	}
}

// narrowPart fetches ids, a part of a refused batch, as narrow does, each
// request under a slot of its own.
func narrowPart(ctx context.Context, ids []string, batch batchFunc, one oneFunc, to answerSink) {
	deliver := to.another(ctx)
	if len(ids) == 1 {
		deliverOne(deliver, ids[0], one(ctx, ids[0]))
		return
	}
	res, refused := batch(ctx, ids)
	deliver(res)
	if refused {
		narrowRest(ctx, ids, res, batch, one, to)
	}
}

// narrowRest narrows the ids of a refused request that its answers res
// left out: in halves, in parallel.
func narrowRest(ctx context.Context, ids []string, res map[string]result, batch batchFunc, one oneFunc, to answerSink) {
	rest := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := res[id]; !ok {
			rest = append(rest, id)
		}
	}
	switch len(rest) {
	case 0:
		return
	case 1:
		narrowPart(ctx, rest, batch, one, to)
		return
	}
	half := len(rest) / 2
	var wg sync.WaitGroup
	wg.Go(func() { narrowPart(ctx, rest[:half], batch, one, to) })
	narrowPart(ctx, rest[half:], batch, one, to)
	wg.Wait()
}

// missingVariable extracts the variable a batch 404 names, from Conjur's
// "CONJ00076E Variable acct:variable:ID is empty or not found." or its
// "Variable 'ID' not found in account 'acct'" ("" if neither).
func missingVariable(err error, prefix string) string {
	var ce *conjurError
	if !asConjurError(err, &ce) {
		return ""
	}
	msg := messageOf(ce)
	if i := strings.Index(msg, "Variable "+prefix); i >= 0 {
		rest := msg[i+len("Variable "+prefix):]
		if j := strings.Index(rest, " is empty or not found"); j > 0 {
			return rest[:j]
		}
	}
	if i := strings.Index(msg, "Variable '"); i >= 0 {
		rest := msg[i+len("Variable '"):]
		if j := strings.Index(rest, "' not found"); j > 0 {
			return rest[:j]
		}
	}
	return ""
}
