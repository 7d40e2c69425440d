package conjur

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"go.uber.org/zap/zapcore"
)

// Ref names one variable to fetch.
type Ref struct {
	ID      string // "apps/db/password", without account and kind
	Version int    // 0 = latest
	NoCache bool   // bypass the value cache (a fresh fetch is still shared with concurrent identical requests)
}

// Value is a fetched variable. It never prints Data.
type Value struct {
	Data      []byte
	Coalesced bool   // this Get joined a fetch another caller had started
	Cached    bool   // served from the value cache
	URL       string // the appliance that answered
}

// String describes the value without its content.
func (v Value) String() string {
	return fmt.Sprintf("conjur.Value{len=%d coalesced=%t cached=%t url=%q}", len(v.Data), v.Coalesced, v.Cached, v.URL)
}

// GoString redacts like String.
func (v Value) GoString() string { return v.String() }

// Format redacts in every verb.
func (v Value) Format(f fmt.State, verb rune) { fmt.Fprint(f, v.String()) }

// MarshalJSON writes the metadata only (the default encoding would write
// Data as base64).
func (v Value) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"len": len(v.Data), "coalesced": v.Coalesced, "cached": v.Cached, "url": v.URL})
}

// MarshalLogObject logs the value's metadata only.
func (v Value) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddInt("len", len(v.Data))
	enc.AddBool("coalesced", v.Coalesced)
	enc.AddBool("cached", v.Cached)
	enc.AddString("url", v.URL)
	return nil
}

type refKey struct {
	id      string
	version int
}

type result struct {
	data []byte
	url  string
	err  error
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
	joined int    // Gets that joined it after it started (under Client.mu)
	gen    uint64 // the credential generation when it started: its value is cached for that one
}

type cacheEntry struct {
	data    []byte
	url     string
	expires time.Time
	gen     uint64 // credential generation it was fetched under; a handoff makes it unusable
}

const (
	maxIDLength = 1024
	// maxBatchQuery bounds the escaped variable_ids query of one batch request,
	// well under common URL limits (Conjur's Puma allows 10 KiB of query).
	maxBatchQuery = 7000
)

func checkRef(ref Ref) *Error {
	switch {
	case ref.ID == "":
		return &Error{Code: CodeBadRequest, Msg: "no variable id given: name the Conjur variable to fetch"}
	case len(ref.ID) > maxIDLength:
		return &Error{Code: CodeBadRequest, Msg: fmt.Sprintf("variable id is %d bytes long, more than %d: check the mapping", len(ref.ID), maxIDLength)}
	case hasControl(ref.ID) || strings.HasPrefix(ref.ID, "/"):
		return &Error{Code: CodeBadRequest, Variable: ref.ID, Msg: "variable id has a control character or a leading '/': check the mapping"}
	case ref.Version < 0:
		return &Error{Code: CodeBadRequest, Variable: ref.ID, Msg: fmt.Sprintf("variable version %d is negative: give 0 for the latest, or a version number", ref.Version)}
	}
	return nil
}

// Get fetches one variable, bounded by FetchTimeout (or ctx's earlier
// deadline). Concurrent Gets of the same (ID, Version) share one fetch; Gets of
// the latest version that arrive together go out as one batch request.
func (c *Client) Get(ctx context.Context, ref Ref) (Value, error) {
	if err := checkRef(ref); err != nil {
		c.noteError(err)
		return Value{}, err
	}
	// No timer of its own: the call this Get starts or joins ends within
	// FetchTimeout of its creation, which is no later than this Get's own
	// FetchTimeout. Every fetch runs under its call's deadline, and a call
	// waiting for a batch slot waits only for batches of calls created
	// before it (the queue is first in, first out), so their deadlines free
	// the slot in time and it then fails at once if its own has passed.
	// ctx is still honoured for an earlier deadline or a cancellation.
	cl, coalesced, v, ok, inline := c.start(ctx, ref)
	if ok {
		return v, nil
	}
	var err error
	if inline {
		v, err = c.runInline(ctx, cl, ref)
	} else {
		v, err = c.wait(ctx, cl, ref, coalesced)
	}
	c.noteError(err)
	return v, err
}

// inlineSlack is how much earlier than the shared fetch's own deadline a
// caller's deadline may fall and the caller still run the fetch itself.
const inlineSlack = 10 * time.Millisecond

// runInline sends cl, which start took as the only request of an idle
// client, from the caller's goroutine: no goroutine to start and no hand-off
// to wake, which on a busy machine costs more than the request's own CPU.
// Gets of the same variable that arrive meanwhile join it as they would a
// batch, and other Gets gather for the next batch as they would while a
// batch is in flight (the call holds a batch slot).
//
// If the caller gives up while no other Get has joined, the fetch is
// abandoned (it is no longer shared) and the caller returns at once. If
// others have joined, the caller stays until the fetch ends, at most the
// fetch timeout: start runs a fetch inline only for a caller whose deadline
// is within inlineSlack of the fetch's, so only a cancellation (the plugin
// stopping, or Docker hanging up) keeps a caller past its end.
func (c *Client) runInline(ctx context.Context, cl *call, ref Ref) (Value, error) {
	defer c.workers.Done() // start counted it (addWorker): Close waits for it like a goroutine's
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.inflight[cl.key] == cl && cl.joined == 0 {
			delete(c.inflight, cl.key)
			cl.cancel()
		}
	})
	defer stop()
	c.sendBatch(cl.ctx, []*call{cl}, []string{cl.key.id})
	if ctx.Err() != nil {
		return Value{}, c.contextError(ctx, ref.ID, nil)
	}
	return c.wait(ctx, cl, ref, false)
}

// Fetch fetches several variables under one FetchTimeout; values[i] and
// errs[i] answer refs[i]. The requests batch and coalesce like Get's.
func (c *Client) Fetch(ctx context.Context, refs []Ref) ([]Value, []error) {
	vals := make([]Value, len(refs))
	errs := make([]error, len(refs))
	ctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
	defer cancel()
	calls := make([]*call, len(refs))
	shared := make([]bool, len(refs))
	c.mu.Lock()
	for i, ref := range refs {
		if err := checkRef(ref); err != nil {
			errs[i] = err
			continue
		}
		var ok bool
		calls[i], shared[i], vals[i], ok = c.startLocked(ref)
		if ok {
			calls[i] = nil
		}
	}
	if len(c.pending) > 0 { // the caller's refs belong together: no window to wait for
		c.flushReady = true
		c.dispatchLocked()
	}
	c.mu.Unlock()
	for i, cl := range calls {
		if cl != nil {
			vals[i], errs[i] = c.wait(ctx, cl, refs[i], shared[i])
		}
	}
	for _, err := range errs {
		c.noteError(err)
	}
	return vals, errs
}

// start returns the cached value (ok), or the call to wait for: an existing
// one (coalesced) or a new one, queued for the batch or started alone. A new
// call that finds the client idle (nothing in flight, nothing gathering) is
// handed back with inline set, holding a batch slot, for the caller to send
// itself (runInline), when the caller's deadline (ctx) is not much earlier
// than the call's.
func (c *Client) start(ctx context.Context, ref Ref) (cl *call, coalesced bool, v Value, ok, inline bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, coalesced, v, ok = c.startLocked(ref)
	if cl != nil && !coalesced && ref.Version == 0 {
		if c.batchesActive == 0 && c.flushTimer == nil && len(c.pending) == 1 && c.pending[0] == cl && callerOutlasts(ctx, cl) && c.addWorker() {
			c.pending = c.pending[:0]
			c.batchesActive++
			return cl, false, Value{}, false, true
		}
		if len(c.pending) >= c.cfg.MaxBatch || c.batchesActive == 0 && len(c.pending) == 1 && c.flushTimer == nil {
			// A full batch goes at once; so does a request that finds nothing
			// in flight (an idle client adds no batching delay). Otherwise
			// requests gather until the window closes or a batch slot frees.
			c.flushReady = true
		}
		if !c.flushReady && c.flushTimer == nil && len(c.pending) > 0 {
			c.flushTimer = time.AfterFunc(c.windowLocked(), c.windowClosed)
		}
		c.dispatchLocked()
	}
	return cl, coalesced, v, ok, false
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

// startLocked is start without the dispatch decision; c.mu is held.
func (c *Client) startLocked(ref Ref) (cl *call, coalesced bool, v Value, ok bool) {
	key := refKey{ref.ID, ref.Version}
	c.credMu.Lock()
	gen := c.gen
	c.credMu.Unlock()
	if c.cfg.CacheTTL > 0 && !ref.NoCache {
		if e, hit := c.cache[key]; hit {
			if e.gen == gen && c.now().Before(e.expires) {
				return nil, false, Value{Data: bytes.Clone(e.data), Cached: true, URL: e.url}, true
			}
			delete(c.cache, key)
		}
	}
	if cl := c.inflight[key]; cl != nil {
		cl.joined++
		return cl, true, Value{}, false
	}
	cl = &call{key: key, done: make(chan struct{}), gen: gen}
	cl.ctx, cl.cancel = context.WithTimeout(c.ctx, c.cfg.FetchTimeout)
	c.inflight[key] = cl
	if ref.Version != 0 || strings.Contains(ref.ID, ",") || c.cfg.MaxBatch == 1 {
		if !c.spawn(func() { c.complete(cl, c.fetchOne(cl.ctx, key.id, key.version)) }) {
			c.finishLocked(cl, result{err: errClosed})
		}
		return cl, false, Value{}, false
	}
	c.life.RLock()
	closed := c.closed
	c.life.RUnlock()
	if closed {
		c.finishLocked(cl, result{err: errClosed})
		return cl, false, Value{}, false
	}
	c.pending = append(c.pending, cl)
	return cl, false, Value{}, false
}

func (c *Client) wait(ctx context.Context, cl *call, ref Ref, coalesced bool) (Value, error) {
	select {
	case <-cl.done:
	case <-ctx.Done():
		return Value{}, c.contextError(ctx, ref.ID, nil)
	case <-cl.ctx.Done():
		// A batch runs until its latest call's deadline: one that went out
		// with later calls ends here, at its own (finishLocked cancels and
		// closes under c.mu, so a finished call is told apart).
		c.mu.Lock()
		select {
		case <-cl.done:
		default:
			c.mu.Unlock()
			if ctx.Err() != nil {
				return Value{}, c.contextError(ctx, ref.ID, nil)
			}
			return Value{Coalesced: coalesced}, c.contextError(cl.ctx, ref.ID, nil)
		}
		c.mu.Unlock()
	}
	if cl.res.err != nil {
		return Value{Coalesced: coalesced}, cl.res.err // no data; says whether the failure was shared
	}
	return Value{Data: bytes.Clone(cl.res.data), Coalesced: coalesced, URL: cl.res.url}, nil
}

// complete publishes a call's result.
func (c *Client) complete(cl *call, res result) {
	c.mu.Lock()
	c.finishLocked(cl, res)
	c.mu.Unlock()
}

func (c *Client) finishLocked(cl *call, res result) {
	if c.inflight[cl.key] == cl {
		delete(c.inflight, cl.key)
	}
	if res.err == nil && c.cfg.CacheTTL > 0 {
		c.cache[cl.key] = cacheEntry{data: res.data, url: res.url, expires: c.now().Add(c.cfg.CacheTTL), gen: cl.gen}
		if len(c.cache)%256 == 0 {
			c.sweepCacheLocked()
		}
	}
	if res.err != nil {
		var e *Error
		if errors.As(res.err, &e) && e.Variable == "" {
			res.err = e.withVariable(cl.key.id)
		}
		if code := CodeOf(res.err); code == CodeForbidden || code == CodeNotFound {
			delete(c.cache, cl.key) // Conjur now refuses it: a value cached before must not be served
		}
	}
	cl.res = res
	cl.cancel()
	close(cl.done)
}

func (c *Client) sweepCacheLocked() {
	now := c.now()
	for k, e := range c.cache {
		if !now.Before(e.expires) {
			delete(c.cache, k)
		}
	}
}

var errPanicked = &Error{Code: CodeInternal, Msg: "the plugin's Conjur client failed unexpectedly while fetching (see the plugin log): retry, and report it if it persists"}

// --- batching -----------------------------------------------------------------

func (c *Client) windowClosed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushTimer = nil
	if len(c.pending) > 0 {
		c.flushReady = true
	}
	c.dispatchLocked()
}

// minWindow is the shortest gathering window, so that Gets arriving in the
// same burst still share a batch when Conjur answers very fast.
const minWindow = 50 * time.Microsecond

// windowLocked is how long Gets that find a batch in flight (and a batch slot
// free) gather before they go out as the next batch: a quarter of a recent
// batch round trip, between minWindow and BatchWindow. Waiting for the batch
// in flight to return would make them pay two round trips; a quarter of one
// is enough to gather a burst's arrivals (the Gets of a node's tasks, or of
// many nodes at once) into one request. c.mu is held.
func (c *Client) windowLocked() time.Duration {
	if c.batchRTT == 0 {
		return c.cfg.BatchWindow
	}
	return min(c.cfg.BatchWindow, max(minWindow, c.batchRTT/4))
}

// dispatchLocked sends pending calls as batches while the window has closed
// (or a full batch is waiting) and fewer than maxActiveBatches are in flight.
// Calls that find no free slot wait, gathering into the next batch.
func (c *Client) dispatchLocked() {
	for c.flushReady && len(c.pending) > 0 && c.batchesActive < maxActiveBatches {
		n, size := 0, 0
		for n < len(c.pending) && n < c.cfg.MaxBatch {
			l := len(url.QueryEscape(c.cfg.Account+":variable:"+c.pending[n].key.id)) + 3
			if n > 0 && size+l > maxBatchQuery {
				break
			}
			size += l
			n++
		}
		batch := append([]*call(nil), c.pending[:n]...)
		c.pending = append(c.pending[:0], c.pending[n:]...)
		c.batchesActive++
		if !c.spawn(func() { c.runBatch(batch) }) {
			c.batchesActive--
			for _, cl := range batch {
				c.finishLocked(cl, result{err: errClosed})
			}
		}
	}
	if len(c.pending) == 0 {
		c.flushReady = false
	}
}

func (c *Client) runBatch(batch []*call) {
	deadline := time.Time{}
	ids := make([]string, len(batch))
	for i, cl := range batch {
		ids[i] = cl.key.id
		if d, _ := cl.ctx.Deadline(); d.After(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	c.sendBatch(ctx, batch, ids)
}

// sendBatch fetches ids, the keys of batch, under ctx, answers the calls
// and frees the batch slot, sending what gathered meanwhile.
func (c *Client) sendBatch(ctx context.Context, batch []*call, ids []string) {
	t0 := time.Now()
	var res map[string]result
	defer func() {
		if res == nil { // fetchBatch panicked: free the calls and the slot, then let the panic go on
			c.mu.Lock()
			for _, cl := range batch {
				c.finishLocked(cl, result{err: errPanicked})
			}
			c.batchesActive--
			c.dispatchLocked()
			c.mu.Unlock()
		}
	}()
	res = c.fetchBatch(ctx, ids)
	rtt := time.Since(t0)
	c.mu.Lock()
	if c.batchRTT == 0 {
		c.batchRTT = rtt
	} else {
		c.batchRTT += (rtt - c.batchRTT) / 8
	}
	for _, cl := range batch {
		c.finishLocked(cl, res[cl.key.id])
	}
	c.batchesActive--
	if len(c.pending) > 0 { // they gathered while this batch was out: send them now
		c.flushReady = true
	}
	c.dispatchLocked()
	c.mu.Unlock()
}

// fetchBatch fetches ids (latest versions) with one batch request. When the
// batch fails as a whole because of some variables (403, 404, 406, 422), it
// finds them: a 404 names the first missing one, which is answered and the
// rest retried; otherwise the batch is split in halves down to single fetches,
// so every other variable still arrives and each failure is reported alone.
func (c *Client) fetchBatch(ctx context.Context, ids []string) map[string]result {
	out := make(map[string]result, len(ids))
	if len(ids) == 1 {
		out[ids[0]] = c.fetchOne(ctx, ids[0], 0)
		return out
	}
	full := make([]string, len(ids))
	prefix := c.cfg.Account + ":variable:"
	for i, id := range ids {
		full[i] = prefix + id
	}
	var vals map[string][]byte
	u, err := c.withFailover(ctx, func(ctx context.Context, ep *endpoint) error {
		return c.authorized(ctx, ep, func(api *conjurapi.Client) error {
			m, err := api.RetrieveBatchSecretsSafe(full)
			if err == nil {
				vals = m
			}
			return err
		})
	})
	if err == nil {
		for _, id := range ids {
			if v, ok := vals[prefix+id]; ok {
				out[id] = result{data: v, url: u}
			} else {
				out[id] = result{err: &Error{Code: CodeValueUnusable, Variable: id,
					Msg: fmt.Sprintf("Conjur's batch answer from %s left out variable %s: retry; if it persists, report it with the Conjur version", u, id)}}
			}
		}
		return out
	}
	switch httpStatus(err) {
	case 403, 404, 406, 422:
	default:
		for _, id := range ids {
			out[id] = result{err: c.finalError(ctx, err, id)}
		}
		return out
	}
	if id := missingVariable(err, prefix); id != "" && contains(ids, id) && httpStatus(err) == 404 {
		out[id] = result{err: c.finalError(ctx, err, id)}
		rest := make([]string, 0, len(ids)-1)
		for _, x := range ids {
			if x != id {
				rest = append(rest, x)
			}
		}
		for k, v := range c.fetchBatch(ctx, rest) {
			out[k] = v
		}
		return out
	}
	half := len(ids) / 2
	var left map[string]result
	var wg sync.WaitGroup
	wg.Go(func() { left = c.fetchBatch(ctx, ids[:half]) })
	right := c.fetchBatch(ctx, ids[half:])
	wg.Wait()
	for k, v := range left {
		out[k] = v
	}
	for k, v := range right {
		out[k] = v
	}
	return out
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
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

// fetchOne fetches one variable (version 0 = latest) with a single request.
func (c *Client) fetchOne(ctx context.Context, id string, version int) result {
	full := c.cfg.Account + ":variable:" + id
	var data []byte
	u, err := c.withFailover(ctx, func(ctx context.Context, ep *endpoint) error {
		return c.authorized(ctx, ep, func(api *conjurapi.Client) error {
			var d []byte
			var err error
			if version > 0 {
				d, err = api.RetrieveSecretWithVersion(full, version)
			} else {
				d, err = api.RetrieveSecret(full)
			}
			if err == nil {
				data = d
			}
			return err
		})
	})
	if err != nil {
		return result{err: c.finalError(ctx, err, id)}
	}
	return result{data: data, url: u}
}

// authorized runs do against ep with an access token; on a 401 it forces one
// re-authentication and retries once.
func (c *Client) authorized(ctx context.Context, ep *endpoint, do func(*conjurapi.Client) error) error {
	tok, err := c.token(ctx, ep, nil)
	if err != nil {
		return err
	}
	err = do(c.bind(ctx, ep.api, tok))
	if httpStatus(err) != 401 {
		return err
	}
	fresh, err := c.token(ctx, ep, tok)
	if err != nil {
		return err
	}
	err = do(c.bind(ctx, ep.api, fresh))
	if httpStatus(err) == 401 {
		return &Error{Code: CodeAuthRefused, Cause: err,
			Msg: fmt.Sprintf("Conjur at %s rejected a freshly issued access token (401): check that every appliance URL belongs to the same Conjur cluster and that the plugin host's clock is right", ep.url)}
	}
	return err
}
