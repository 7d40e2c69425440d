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

// narrow fetches ids with batch and answers each exactly once through
// deliver, with the answers of each request as it returns. When a batch is
// refused as a whole because of some variables, it finds them: a variable
// the refusal names is answered and the rest sent again; otherwise the batch
// is split in halves, down to single fetches, so every other variable still
// arrives and each failure is reported alone.
func narrow(ctx context.Context, ids []string, batch batchFunc, one oneFunc, deliver func(map[string]result)) {
	if len(ids) == 1 {
		deliver(map[string]result{ids[0]: one(ctx, ids[0])})
		return
	}
	res, refused := batch(ctx, ids)
	if len(res) > 0 {
		deliver(res)
	}
	if !refused {
		return
	}
	rest := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := res[id]; !ok {
			rest = append(rest, id)
		}
	}
	switch {
	case len(rest) == 0:
		return
	case len(rest) < len(ids): // the refusal named a variable: send the others again
		narrow(ctx, rest, batch, one, deliver)
		return
	}
	half := len(rest) / 2
	var wg sync.WaitGroup
	wg.Go(func() { narrow(ctx, rest[:half], batch, one, deliver) })
	narrow(ctx, rest[half:], batch, one, deliver)
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
