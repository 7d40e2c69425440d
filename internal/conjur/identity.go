package conjur

import (
	"container/list"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/identity"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// The per-request identity mode (CONJUR_SWARM_IDENTITY=per-request): every
// Get names the Conjur identity the mapping chose for it (Ref.Workload), and
// the Client reads the variable as that identity, authenticating through
// authn-jwt with a JWT the plugin signs itself (Config.Signer). Each identity
// has its own session (its access tokens, one per appliance URL, refreshed
// like the single identity's), its own batcher (coalescing, batching: a
// batch request never carries two identities) and its own value cache;
// last-good values are filed under the identity too. The identities share
// the HTTP transport (connections, the CA, the proxy) and the request
// window: at most MaxInFlight requests to Conjur are in flight at once for
// all of them together, as in the single-identity modes. At most
// MaxIdentities identities are kept; beyond that the least recently used
// one is dropped with its tokens and cached values (its next Get
// authenticates again). A refusal of one identity (an unknown host, a JWT
// Conjur does not accept, a variable it may not execute) is that identity's
// answer and changes nothing for the others.

// DefaultMaxIdentities bounds the identities a Client keeps at once.
const DefaultMaxIdentities = 1024

// Workload is whom a Get is made for in the per-request identity mode:
// Subject is the identity the mapping chose (the JWT's sub), the other
// fields the facts of the request that the JWT carries as claims, for
// Conjur's host annotations to pin. It holds no secret.
type Workload = identity.Claims

// Signer signs the short-lived JWT that authenticates a workload to
// Conjur's authn-jwt with the manager's own key (*identity.Signer). The JWT
// is a credential: it lives in a redact.String and never reaches a log, a
// status or an error.
type Signer interface {
	Sign(w Workload) (jwt redact.String, expires time.Time, err error)
	// Issuer and KeyID name the JWTs' iss and the kid of the key that
	// signs now, for the status (what Conjur's public-keys must hold).
	Issuer() string
	KeyID() string
}

// principal is one identity of the per-request mode: what its session
// authenticates with.
type principal struct {
	name    string
	service string // the authn-jwt service id
	sign    Signer
	last    atomic.Pointer[Workload] // the latest Get's workload: the next JWT carries its claims
}

// credential signs a JWT for the identity, with the claims of its latest Get.
func (p *principal) credential() (credChoice, error) {
	w := p.last.Load()
	jwt, _, err := p.sign.Sign(*w)
	if err != nil {
		return credChoice{source: sourcePerRequest}, &Error{Code: errcode.NotConfigured, Cause: err,
			Msg: fmt.Sprintf("the plugin cannot sign a JWT for identity %s: %v", p.name, err)}
	}
	if jwt == "" {
		return credChoice{source: sourcePerRequest}, &Error{Code: errcode.NotConfigured,
			Msg: fmt.Sprintf("the plugin signed an empty JWT for identity %s: check the manager's signing key (conjur-swarm jwks)", p.name)}
	}
	return credChoice{cred: credential.Credential{JWT: jwt}, source: sourcePerRequest}, nil
}

// refused is the AUTH_REFUSED of the identity: Conjur at url ("" when not
// known) answered status to its JWT or to its access token.
func (p *principal) refused(url, service string, status int, cause error) *Error {
	at := "Conjur"
	if url != "" {
		at += " at " + url
	}
	return &Error{Code: errcode.AuthRefused, Cause: cause, Msg: fmt.Sprintf(
		"%s refused identity %s through authn-jwt/%s (HTTP %d): declare a host %s (below the service's identity-path) with authenticate on conjur/authn-jwt/%s and annotations that match its claims, "+
			"and make sure conjur/authn-jwt/%s/public-keys holds this manager's public key (conjur-swarm jwks --merge) and its issuer and audience match the plugin's",
		at, p.name, service, status, p.name, service, service)}
}

// forbidden is the FORBIDDEN of the identity: Conjur lets it see variable
// id but not fetch it.
func (p *principal) forbidden(id string, cause error) *Error {
	return &Error{Code: errcode.Forbidden, Variable: id, Cause: cause, Msg: fmt.Sprintf(
		"Conjur refuses variable %s to identity %s (authn-jwt/%s): the host may see it but lacks execute on it. If the mapping rule that chose %s for this secret is wrong, fix the rule; if it is right, !permit execute on the variable to that host",
		id, p.name, p.service, p.name)}
}

const sourcePerRequest = "per-request"

// checkWorkload refuses a Get of the per-request mode with no usable identity.
func checkWorkload(ref Ref) *Error {
	w := ref.Workload
	switch {
	case w == nil || w.Subject == "":
		return &Error{Code: errcode.NotConfigured, Variable: ref.ID,
			Msg: "the plugin reads every variable with the identity the mapping chooses (CONJUR_SWARM_IDENTITY=per-request), and this request has none: give the mapping a top-level identity, or one in the rule"}
	case len(w.Subject) > maxIDLength || credential.HasSpaceOrControl(w.Subject) || strings.HasPrefix(w.Subject, "/") || strings.HasSuffix(w.Subject, "/"):
		return &Error{Code: errcode.BadRequest, Variable: ref.ID,
			Msg: fmt.Sprintf("identity %q is not a Conjur host id (no whitespace, control characters or leading/trailing '/', at most %d bytes): check the mapping's identity", redactLong(w.Subject), maxIDLength)}
	}
	return nil
}

func redactLong(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// tenant is one identity's layers: its session, batcher and value cache.
type tenant struct {
	p     *principal
	sess  *session
	batch *batcher
	cache *valueCache
}

// identities is the bounded pool of tenants of a Client in the per-request
// mode. Its lock is a leaf: it is never held while a tenant is used.
type identities struct {
	root   *session      // transport, CA, clock, log and lifecycle to share
	signer Signer        // Config.Signer
	window chan struct{} // the request slots all identities share
	max    int

	mu     sync.Mutex
	order  *list.List // front = most recently used; values are *tenant
	byName map[string]*list.Element
}

func newIdentities(root *session, signer Signer, max int) *identities {
	return &identities{root: root, signer: signer, window: make(chan struct{}, root.cfg.MaxInFlight), max: max,
		order: list.New(), byName: map[string]*list.Element{}}
}

// get returns w's tenant, building it at the identity's first Get, and
// records w as the workload its next JWT is signed for.
func (ids *identities) get(w *Workload) (*tenant, error) {
	ids.mu.Lock()
	if el, ok := ids.byName[w.Subject]; ok {
		ids.order.MoveToFront(el)
		t := el.Value.(*tenant)
		ids.mu.Unlock()
		t.p.last.Store(w)
		return t, nil
	}
	ids.mu.Unlock()
	t, err := ids.build(w.Subject)
	if err != nil {
		return nil, err
	}
	t.p.last.Store(w)
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if el, ok := ids.byName[w.Subject]; ok { // another Get built it meanwhile
		ids.order.MoveToFront(el)
		t = el.Value.(*tenant)
		t.p.last.Store(w)
		return t, nil
	}
	ids.byName[w.Subject] = ids.order.PushFront(t)
	for ids.order.Len() > ids.max {
		oldest := ids.order.Back()
		ids.order.Remove(oldest)
		old := oldest.Value.(*tenant)
		delete(ids.byName, old.p.name)
		ids.root.log.Debug("conjur identity dropped from the pool (least recently used)", zap.String("identity", old.p.name))
	}
	return t, nil
}

// build makes the layers of identity name. It does no I/O.
func (ids *identities) build(name string) (*tenant, error) {
	root := ids.root
	p := &principal{name: name, service: root.cfg.JWTServiceID, sign: ids.signer}
	s := &session{cfg: root.cfg, log: root.log.With(zap.String("identity", name)), life: root.life, status: root.status,
		transport: root.transport, ca: root.ca, now: func() time.Time { return root.now() }, who: p}
	for _, u := range root.cfg.ApplianceURLs {
		ep, err := newEndpoint(root.cfg, u)
		if err != nil {
			return nil, err
		}
		s.eps = append(s.eps, ep)
	}
	b := newBatcher(root.cfg, windowed{next: s, slots: ids.window, life: root.life, timeout: root.cfg.FetchTimeout}, root.life, s.generation)
	return &tenant{p: p, sess: s, batch: b, cache: newValueCache(b, root.cfg.CacheTTL, s.now, s.generation)}, nil
}

// all returns the tenants now in the pool.
func (ids *identities) all() []*tenant {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	out := make([]*tenant, 0, ids.order.Len())
	for el := ids.order.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*tenant))
	}
	return out
}

// windowed is a fetcher that holds one of the slots all identities share
// while its session fetches: the identities together have at most
// MaxInFlight requests to Conjur in flight, as the single identity has.
// While it waits for a slot, its batcher's slot stays taken, so that the
// identity's other Gets gather into its next batch.
type windowed struct {
	next    fetcher
	slots   chan struct{}
	life    *lifecycle
	timeout time.Duration
}

func (w windowed) fetch(ctx context.Context, ids []string, version int, to answerSink) {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		answers := make(map[string]result, len(ids))
		for _, id := range ids {
			answers[id] = result{err: contextError(w.life.ctx, ctx, id, nil, w.timeout)}
		}
		to.deliver(answers)
		return
	}
	defer func() { <-w.slots }()
	w.next.fetch(ctx, ids, version, to)
}

// identityStatus fills st for the per-request mode: the source, and the
// health of each URL as the identities saw it (the worst of them).
func (ids *identities) status(st *Status) {
	st.Login, st.CredentialSource = "", sourcePerRequest
	st.SigningIssuer, st.SigningKeyID = ids.signer.Issuer(), ids.signer.KeyID()
	st.URLs = st.URLs[:0]
	all := ids.all()
	for i, u := range ids.root.cfg.ApplianceURLs {
		us := URLStatus{URL: u, Healthy: true}
		for _, t := range all {
			ep := t.sess.eps[i]
			ep.mu.Lock()
			if ep.failures > us.Failures {
				us = URLStatus{URL: u, Healthy: false, Failures: ep.failures, RetryAt: ep.retryAt, LastError: ep.lastErr}
			}
			ep.mu.Unlock()
		}
		st.URLs = append(st.URLs, us)
	}
	st.Identities = len(all)
}

// close fails every queued call of every identity.
func (ids *identities) close() {
	for _, t := range ids.all() {
		t.batch.close()
	}
}
