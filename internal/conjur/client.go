package conjur

import (
	"bytes"
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Client fetches variables from Conjur for the plugin. It is safe for
// concurrent use. It is a thin composition of three layers, each with its
// own lock, and a status book:
//
//	Get / GetMany -> valueCache (TTL, credential generation)
//	              -> batcher    (coalescing, pending queue, batch slots, window)
//	              -> session    (URLs and failover, tokens, credential, Adopt; conjurapi)
//
// Lock order (a lock on the left may be held while one on its right is
// taken, never the reverse; no lock is held across a request to Conjur, and
// none is held while a layer calls the layer below it):
//
//	batcher.mu -> lifecycle.mu
//	endpoint.mu -> session.creds.mu
//	endpoint.mu -> lifecycle.mu
//	valueCache.mu, statusBook.mu, lastGood.mu, caFile.mu, session.creds.mu,
//	lifecycle.mu: leaves
//
// The batcher takes lifecycle.mu (spawn, enter) under its own lock to start
// a batch; an endpoint's lock is held while the authentication it starts is
// spawned and while the credential generation is compared. Close stops
// everything it started.
type Client struct {
	life   *lifecycle  // the goroutines and the context Close cancels
	sess   *session    // the only layer that talks to Conjur
	batch  *batcher    // coalescing and batching over sess
	cache  *valueCache // the value cache over batch (a pass-through at CacheTTL 0)
	status *statusBook // last contact and last error, for Status
	good   *lastGood   // last good values of refs fetched with KeepLastGood
	ids    *identities // the per-request identity mode's identities (identity.go); nil in the single-identity modes
}

// New builds a Client. It does no network I/O; with no credential configured
// every Get fails NO_CREDENTIAL until Adopt succeeds.
func New(cfg Config, log *zap.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	warnClearProxy(cfg, log)
	c := &Client{life: newLifecycle()}
	c.status = &statusBook{now: c.now}
	sess, err := newSession(cfg, log, c.life, c.status)
	if err != nil {
		c.life.cancel()
		return nil, err
	}
	c.sess = sess
	if sess.ca != nil {
		c.life.spawn(sess.watchCA)
	}
	c.batch = newBatcher(cfg, sess, c.life, sess.generation)
	c.cache = newValueCache(c.batch, cfg.CacheTTL, c.now, sess.generation)
	c.good = newLastGood(MaxLastGood)
	if cfg.Signer != nil {
		c.ids = newIdentities(sess, cfg.Signer, cfg.MaxIdentities)
	}
	return c, nil
}

// now is the clock of every layer (the session's, which tests may replace).
func (c *Client) now() time.Time { return c.sess.now() }

// Close fails every waiting request with UNAVAILABLE, stops every goroutine the
// Client started and closes idle connections. It is safe to call twice.
func (c *Client) Close() error {
	if !c.life.markClosed() {
		return nil
	}
	c.batch.close()
	if c.ids != nil {
		c.ids.close()
	}
	c.life.stop()
	c.sess.close()
	return nil
}

var errClosed = &Error{Code: errcode.Unavailable, Msg: "the plugin's Conjur client is shutting down: retry once the plugin has restarted"}

// Get fetches one variable, bounded by FetchTimeout (or ctx's earlier
// deadline). Concurrent Gets of the same (ID, Version) share one fetch; Gets of
// the latest version that arrive together go out as one batch request.
func (c *Client) Get(ctx context.Context, ref Ref) (Value, error) {
	if err := checkRef(ref); err != nil {
		c.status.failure(err)
		return Value{}, err
	}
	if c.ids != nil {
		return c.getAs(ctx, ref)
	}
	gen := c.sess.generation()
	o := c.cache.get(ctx, ref)
	c.status.failure(o.err)
	c.keep(c.sess, ref, o, gen)
	return o.v, o.err
}

// GetMany fetches several variables under one FetchTimeout (or ctx's earlier
// deadline); the i-th Result answers refs[i], with its own value or error.
// The refs for latest versions go out at once, together: a client with no
// batch in flight fetches up to MaxBatch of them (and at most ~7 KB of
// query) in one batch request, narrowed when some variables make it fail so
// that each failure is reported alone. Refs with a version go out one by
// one, in parallel. Like Get's, the requests coalesce with identical ones in
// flight, fail over between URLs and use the value cache.
func (c *Client) GetMany(ctx context.Context, refs []Ref) []Result {
	out := make([]Result, len(refs))
	valid := make([]Ref, 0, len(refs))
	idx := make([]int, 0, len(refs))
	for i, ref := range refs {
		if err := checkRef(ref); err != nil {
			out[i].Err = err
			continue
		}
		valid = append(valid, ref)
		idx = append(idx, i)
	}
	if c.ids != nil {
		c.getManyAs(ctx, valid, idx, out)
	} else if len(valid) > 0 {
		gen := c.sess.generation()
		for j, o := range c.cache.getMany(ctx, valid) {
			out[idx[j]] = Result{Value: o.v, Err: o.err}
			c.keep(c.sess, valid[j], o, gen)
		}
	}
	for _, r := range out {
		c.status.failure(r.Err)
	}
	return out
}

// Adopt is the handoff: it accepts cred only for the configured login,
// authenticates with it first (failing over like a fetch), and only then makes
// it the credential in use. On any error the previous credential stays.
//
// A handoff of another identity (another login, or a JWT with no login
// pinned) drops every last-good value: they were fetched with the rights of
// the identity before.
func (c *Client) Adopt(ctx context.Context, cred credential.Credential) error {
	if c.ids != nil {
		c.status.failure(errNoHandoff)
		return errNoHandoff
	}
	before := c.sess.identity()
	err := c.sess.adopt(ctx, cred)
	c.status.failure(err)
	if err == nil && (c.sess.identity() != before || cred.Login == "" && c.sess.cfg.Login == "") {
		if n := c.good.len(); n > 0 {
			c.good.wipe()
			c.sess.log.Info("last-good values dropped: another identity was handed over", zap.Int("values", n))
		}
	}
	return err
}

// keep records a value for a ref fetched with KeepLastGood as its last
// good value, unless the credential of sess, the session that fetched it,
// changed meanwhile (gen is the generation before the fetch). Every path
// keeps it: a value the value cache served counts from when Conjur answered
// it (another rule, without KeepLastGood, may have fetched it). The
// last-good store holds its own copy: the caller may wipe the one it gets.
func (c *Client) keep(sess *session, ref Ref, o outcome, gen uint64) {
	if !ref.KeepLastGood || o.err != nil || sess.generation() != gen {
		return
	}
	at := c.now()
	if o.v.Cached {
		at = o.v.fetchedAt
	}
	c.good.put(goodKey(ref), bytes.Clone(o.v.Data), at)
}

// LastGood returns the value last fetched from Conjur for ref's variable
// and version (0 = latest, as requested) by a Get or GetMany with
// KeepLastGood, when Conjur answered it at most maxAge ago, and when it
// answered. It never contacts Conjur. The values live in memory only, at
// most MaxLastGood of them (the least recently used is dropped), and a
// handoff of another identity drops them all.
func (c *Client) LastGood(ref Ref, maxAge time.Duration) (Value, time.Time, bool) {
	data, at, ok := c.good.get(goodKey(ref), maxAge, c.now())
	if !ok {
		return Value{}, time.Time{}, false
	}
	return Value{Data: data}, at, true
}

// Status reports the credential in use, the token, the last contact and error,
// and the health of every URL.
func (c *Client) Status() Status {
	var s Status
	c.sess.credStatus(&s)
	s.CredentialFile = c.sess.credentialFileState(&s)
	if c.ids != nil {
		c.ids.status(&s)
	}
	c.status.fill(&s)
	return s
}
