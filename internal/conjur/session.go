package conjur

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// session is the layer that talks to Conjur, and the only one that uses
// conjurapi: the appliance URLs and their health (failover), the access
// token of each URL, the credential in use and the handoff (adopt). Its
// fetch answers a set of ids with one request (a batch, narrowed when some
// of its variables make it fail as a whole) or one per versioned id; it does
// no coalescing and keeps no queue (the batcher above it does).
//
// Locks: creds.mu guards the credential state; each endpoint's mu guards
// its token, its authentication in flight and its health. An endpoint's mu
// may be held while creds.mu is taken (never the other way round), and
// while a goroutine is spawned (lifecycle's lock). No lock is held across a
// request.
type session struct {
	cfg       Config
	log       *zap.Logger
	life      *lifecycle
	status    *statusBook
	transport *atomic.Pointer[http.Transport] // swapped when the CA file changes; shared by an identity's session (identity.go)
	ca        *caFile                         // nil without CACertFile
	eps       []*endpoint
	now       func() time.Time
	creds     credentials
	iam       iamCache // the instance role's AWS credentials (authn-iam)

	// who is set on the session of one identity of the per-request mode
	// (identity.go): that identity's JWT is its only credential.
	who *principal
}

// credentials is the credential state of a session.
type credentials struct {
	mu        sync.Mutex
	handoff   *credential.Credential // the handed-over credential, once adopted
	handoffAt time.Time
	gen       uint64  // bumped when the credential in use changes by handoff
	used      credUse // the credential last used to authenticate successfully
}

// credUse remembers the credential last used to authenticate successfully.
type credUse struct {
	source      string
	login       string
	fingerprint string
	setAt       time.Time
}

// endpoint is one appliance URL: its conjurapi clients, its token and its health.
type endpoint struct {
	url     string
	api     *apiClient // authn (API key) and secrets
	jwtAPI  *apiClient // authn-jwt; nil without a service id
	secrets secretURLs // the single-variable request (secret.go); empty: through api

	mu       sync.Mutex
	tok      *accessToken
	auth     *authCall
	failures int
	retryAt  time.Time
	lastErr  string
}

// newSession builds the session for cfg (defaults applied). It does no I/O.
func newSession(cfg Config, log *zap.Logger, life *lifecycle, status *statusBook) (*session, error) {
	s := &session{cfg: cfg, log: log, life: life, status: status, now: cfg.Now, transport: new(atomic.Pointer[http.Transport])}
	if s.now == nil {
		s.now = time.Now
	}
	s.transport.Store(newTransport(cfg, cfg.CACertPEM))
	if cfg.CACertFile != "" {
		s.ca = newCAFile(cfg.CACertFile, cfg.CACertPEM, log)
	}
	for _, u := range cfg.ApplianceURLs {
		ep, err := newEndpoint(cfg, u)
		if err != nil {
			return nil, err
		}
		s.eps = append(s.eps, ep)
	}
	return s, nil
}

func newEndpoint(cfg Config, u string) (*endpoint, error) {
	base, tele := cfg.apiConfig(u), apiTelemetry()
	c, err := conjurapi.NewClient(base, tele)
	if err != nil {
		return nil, fmt.Errorf("conjur client for %s: %w", u, err)
	}
	ep := &endpoint{url: u, api: newAPIClient(c)}
	if p, ok := newSecretURLs(c, cfg.Account); ok {
		ep.secrets = p
	}
	if cfg.JWTServiceID != "" {
		jc := base
		jc.AuthnType = "jwt"
		jc.ServiceID = cfg.JWTServiceID
		jc.JWTHostID = cfg.JWTHostID
		jc.JWTFilePath = "-" // the JWT is read by this package at each authentication, never by conjurapi
		jwt, err := conjurapi.NewClient(jc, tele)
		if err != nil {
			return nil, fmt.Errorf("conjur authn-jwt client for %s: %w", u, err)
		}
		ep.jwtAPI = newAPIClient(jwt)
	}
	return ep, nil
}

// close closes idle connections; the lifecycle has stopped every request.
func (s *session) close() { s.transport.Load().CloseIdleConnections() }

// fetch fetches ids and answers each exactly once through to, with the
// answers of each request as it returns. With version 0 they are the latest
// versions, and several go out as one batch request (narrowed if some of
// them make it fail as a whole); with a version, each id is fetched at that
// version alone. It returns once every id has been answered. ctx bounds
// every request.
func (s *session) fetch(ctx context.Context, ids []string, version int, to answerSink) {
	if version == 0 && len(ids) > 1 {
		narrow(ctx, ids, s.batchOnce, func(ctx context.Context, id string) result { return s.fetchOne(ctx, id, 0) }, to)
		return
	}
	if len(ids) == 1 { // on the caller's goroutine: a lone fetch starts no goroutine
		deliverOne(to.deliver, ids[0], s.fetchOne(ctx, ids[0], version))
		return
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { deliverOne(to.deliver, id, s.fetchOne(ctx, id, version)) })
	}
	wg.Wait()
}

// batchOnce sends ids (latest versions) as one batch request. It answers
// every id (refused false), or reports that the batch failed as a whole
// because of some of its variables (403, 404, 406, 422: refused true), with
// an answer for the variable a 404 named, if it named one of ids.
func (s *session) batchOnce(ctx context.Context, ids []string) (map[string]result, bool) {
	full := make([]string, len(ids))
	prefix := s.cfg.Account + ":variable:"
	for i, id := range ids {
		full[i] = prefix + id
	}
	var vals map[string][]byte
	u, err := s.withFailover(ctx, func(ctx context.Context, ep *endpoint) error {
		return s.authorizedWith(ctx, ep, func(tok *accessToken) error {
			m, err := s.retrieveBatch(ctx, ep, tok, full)
			if err == nil {
				vals = m
			}
			return err
		})
	})
	out := make(map[string]result, len(ids))
	if err == nil {
		for _, id := range ids {
			if v, ok := vals[prefix+id]; ok {
				out[id] = result{data: v, url: u}
			} else {
				out[id] = result{err: &Error{Code: errcode.ValueUnusable, Variable: id,
					Msg: fmt.Sprintf("Conjur's batch answer from %s left out variable %s: retry; if it persists, report it with the Conjur version", u, id)}}
			}
		}
		return out, false
	}
	switch httpStatus(err) {
	case 403, 404, 406, 422:
	default:
		for _, id := range ids {
			out[id] = result{err: s.finalError(ctx, err, id)}
		}
		return out, false
	}
	if id := missingVariable(err, prefix); id != "" && slices.Contains(ids, id) && httpStatus(err) == 404 {
		out[id] = result{err: s.finalError(ctx, err, id)}
	}
	return out, true
}

// fetchOne fetches one variable (version 0 = latest) with a single request.
func (s *session) fetchOne(ctx context.Context, id string, version int) result {
	var data []byte
	u, err := s.withFailover(ctx, func(ctx context.Context, ep *endpoint) error {
		return s.authorizedWith(ctx, ep, func(tok *accessToken) error {
			d, err := s.retrieveSecret(ctx, ep, tok, id, version)
			if err == nil {
				data = d
			}
			return err
		})
	})
	if err != nil {
		return result{err: s.finalError(ctx, err, id)}
	}
	return result{data: data, url: u}
}

// authorized runs do against ep with an access token; on a 401 it forces one
// re-authentication and retries once.
func (s *session) authorized(ctx context.Context, ep *endpoint, do func(apiOps) error) error {
	return s.authorizedWith(ctx, ep, func(tok *accessToken) error { return do(s.bind(ctx, ep.api, tok)) })
}

// authorizedWith is authorized for a request that this package sends
// itself with the token.
func (s *session) authorizedWith(ctx context.Context, ep *endpoint, do func(*accessToken) error) error {
	tok, err := s.token(ctx, ep, nil)
	if err != nil {
		return err
	}
	err = do(tok)
	if httpStatus(err) != 401 {
		return err
	}
	fresh, err := s.token(ctx, ep, tok)
	if err != nil {
		return err
	}
	err = do(fresh)
	if httpStatus(err) == 401 {
		return &Error{Code: errcode.AuthRefused, Cause: err,
			Msg: fmt.Sprintf("Conjur at %s rejected a freshly issued access token (401): check that every appliance URL belongs to the same Conjur cluster and that the plugin host's clock is right", ep.url)}
	}
	return err
}

// bind returns the calls of a per-request copy of a conjurapi client whose
// HTTP calls use ctx and, when tok is given, that access token. conjurapi's
// own methods take no context and keep a token without locking; a copy per
// request gives each call its deadline and shares no mutable state between
// goroutines.
func (s *session) bind(ctx context.Context, base *apiClient, tok *accessToken) apiOps {
	parsed := tok != nil && tok.api != nil && base == tok.base
	if parsed {
		base = tok.api
	}
	var raw []byte
	if tok != nil && !parsed {
		raw = tok.raw
	}
	return base.bind(s.bindHTTP(ctx), raw)
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// credStatus fills the credential, token and URL fields of st.
func (s *session) credStatus(st *Status) {
	s.creds.mu.Lock()
	gen := s.creds.gen
	switch h := s.creds.handoff; {
	case h != nil:
		st.Login, st.CredentialSource = h.Login, "handoff"
		st.CredentialFingerprint, st.CredentialSetAt = h.Fingerprint(), s.creds.handoffAt
	default:
		st.Login, st.CredentialSource = s.cfg.Login, s.configuredSource()
		if u := s.creds.used; u.source == st.CredentialSource {
			st.CredentialFingerprint, st.CredentialSetAt = u.fingerprint, u.setAt
			if u.login != "" {
				st.Login = u.login
			}
		}
	}
	s.creds.mu.Unlock()

	for _, ep := range s.eps {
		ep.mu.Lock()
		if ep.tok != nil && ep.tok.gen == gen && ep.tok.expiresAt.After(st.TokenExpiresAt) {
			st.TokenExpiresAt = ep.tok.expiresAt
		}
		st.URLs = append(st.URLs, URLStatus{URL: ep.url, Healthy: ep.failures == 0, Failures: ep.failures, RetryAt: ep.retryAt, LastError: ep.lastErr})
		ep.mu.Unlock()
	}
}

func (s *session) configuredSource() string {
	switch {
	case s.cfg.AuthnType != "":
		return s.cfg.AuthnType
	case s.cfg.CredentialFile != "":
		return "file"
	case s.cfg.JWTTokenPath != "":
		return "jwt"
	case s.cfg.APIKey != "":
		return "env"
	}
	return "none"
}

// generation is the credential generation now in use.
func (s *session) generation() uint64 {
	s.creds.mu.Lock()
	defer s.creds.mu.Unlock()
	return s.creds.gen
}
