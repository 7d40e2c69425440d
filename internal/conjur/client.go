package conjur

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"go.uber.org/zap"
)

// Client fetches variables from Conjur for the plugin. It is safe for
// concurrent use. It owns the access tokens (one per appliance URL), the
// coalescing of identical requests, the batching of concurrent ones, and the
// failover between URLs. Close stops everything it started.
type Client struct {
	cfg       Config
	log       *zap.Logger
	transport *http.Transport
	eps       []*endpoint
	now       func() time.Time

	ctx    context.Context // canceled by Close; parent of every background call
	cancel context.CancelFunc

	life    sync.RWMutex // guards closed against wg.Add racing wg.Wait
	closed  bool
	workers sync.WaitGroup

	credMu    sync.Mutex
	handoff   *Credential
	handoffAt time.Time
	gen       uint64 // bumped when the credential in use changes by handoff
	used      credUse

	mu            sync.Mutex // calls, batch queue, cache, status
	inflight      map[refKey]*call
	pending       []*call
	flushTimer    *time.Timer
	flushReady    bool
	batchesActive int
	batchRTT      time.Duration // moving average of a batch request's round trip (0: none yet)
	cache         map[refKey]cacheEntry
	lastContact   time.Time
	lastURL       string
	lastErrCode   Code
	lastErr       string
	lastErrAt     time.Time
}

// credUse remembers the credential last used to authenticate successfully.
type credUse struct {
	source      string
	login       string
	fingerprint string
	setAt       time.Time
}

// maxActiveBatches bounds the batch requests in flight at once; requests that
// arrive meanwhile gather into the next batch, so a burst costs few requests.
const maxActiveBatches = 2

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

	var pool *x509.CertPool
	if len(cfg.CACertPEM) > 0 {
		pool = x509.NewCertPool()
		pool.AppendCertsFromPEM(cfg.CACertPEM)
	}
	tr := &http.Transport{
		Proxy:                 nil, // no ambient proxy settings: Conjur is reached directly
		DialContext:           (&net.Dialer{Timeout: cfg.FetchTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool},
		TLSHandshakeTimeout:   cfg.FetchTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}

	c := &Client{
		cfg:       cfg,
		log:       log,
		transport: tr,
		now:       time.Now,
		inflight:  map[refKey]*call{},
		cache:     map[refKey]cacheEntry{},
	}
	for _, u := range cfg.ApplianceURLs {
		ep, err := newEndpoint(cfg, u)
		if err != nil {
			return nil, err
		}
		c.eps = append(c.eps, ep)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close fails every waiting request with UNAVAILABLE, stops every goroutine the
// Client started and closes idle connections. It is safe to call twice.
func (c *Client) Close() error {
	c.life.Lock()
	already := c.closed
	c.closed = true
	c.life.Unlock()
	if already {
		return nil
	}
	c.mu.Lock()
	if c.flushTimer != nil {
		c.flushTimer.Stop()
		c.flushTimer = nil
	}
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, cl := range pending {
		c.complete(cl, result{err: errClosed})
	}
	c.cancel()
	c.workers.Wait()
	c.transport.CloseIdleConnections()
	return nil
}

var errClosed = &Error{Code: CodeUnavailable, Msg: "the plugin's Conjur client is shutting down: retry once the plugin has restarted"}

// spawn runs f in a goroutine owned by the Client, unless it is closed.
func (c *Client) spawn(f func()) bool {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed {
		return false
	}
	c.workers.Add(1)
	go func() {
		defer c.workers.Done()
		f()
	}()
	return true
}

// addWorker counts work the caller's goroutine does for the Client (an
// inline fetch) so that Close waits for it, unless the Client is closed.
func (c *Client) addWorker() bool {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed {
		return false
	}
	c.workers.Add(1)
	return true
}

// endpoint is one appliance URL: its conjurapi clients, its token and its health.
type endpoint struct {
	url    string
	api    *conjurapi.Client // authn (API key) and secrets
	jwtAPI *conjurapi.Client // authn-jwt; nil without a service id

	mu       sync.Mutex
	tok      *accessToken
	auth     *authCall
	failures int
	retryAt  time.Time
	lastErr  string
}

func newEndpoint(cfg Config, u string) (*endpoint, error) {
	base := conjurapi.Config{
		Account:               cfg.Account,
		ApplianceURL:          u,
		CredentialStorage:     conjurapi.CredentialStorageNone,
		CredentialStorageMode: conjurapi.CredentialStorageModeReadOnly,
		Environment:           conjurapi.EnvironmentSH, // explicit: no probing at construction
		HTTPTimeout:           int(cfg.FetchTimeout/time.Second) + 1,
	}
	base.SetKeychainNamespaceResolved(true) // do not consult CONJUR_KEYCHAIN_NAMESPACE
	tele := conjurapi.NewTelemetry("conjur-swarm", "secret-driver", "", "", "")
	api, err := conjurapi.NewClient(base, tele)
	if err != nil {
		return nil, fmt.Errorf("conjur client for %s: %w", u, err)
	}
	ep := &endpoint{url: u, api: api}
	if cfg.JWTServiceID != "" {
		jc := base
		jc.AuthnType = "jwt"
		jc.ServiceID = cfg.JWTServiceID
		jc.JWTHostID = cfg.JWTHostID
		jc.JWTFilePath = "-" // the JWT is read by this package at each authentication, never by conjurapi
		if ep.jwtAPI, err = conjurapi.NewClient(jc, tele); err != nil {
			return nil, fmt.Errorf("conjur authn-jwt client for %s: %w", u, err)
		}
	}
	return ep, nil
}

// bind returns a per-request copy of a conjurapi client whose HTTP calls use
// ctx and, when tok is given, that access token. conjurapi's own methods take
// no context and keep a token without locking; a copy per request gives each
// call its deadline and shares no mutable state between goroutines.
func (c *Client) bind(ctx context.Context, base *conjurapi.Client, tok *accessToken) *conjurapi.Client {
	parsed := tok != nil && tok.api != nil && base == tok.base
	if parsed {
		base = tok.api
	}
	cp := *base
	cp.SetHttpClient(&http.Client{
		Transport:     ctxTransport{ctx: ctx, rt: c.transport},
		CheckRedirect: noRedirect,
	})
	if tok != nil && !parsed {
		cp.SetAuthenticator(staticToken(tok.raw))
	}
	return &cp
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

type ctxTransport struct {
	ctx context.Context
	rt  http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r.WithContext(t.ctx))
	if err != nil || resp.StatusCode < 300 {
		return resp, err
	}
	return scrubErrorBody(r, resp), nil
}

// --- URL health -------------------------------------------------------------

const (
	backoffBase = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
)

func (ep *endpoint) succeeded(c *Client) {
	ep.mu.Lock()
	was := ep.failures
	ep.failures, ep.retryAt, ep.lastErr = 0, time.Time{}, ""
	ep.mu.Unlock()
	if was > 0 {
		c.log.Info("conjur appliance answers again", zap.String("url", ep.url), zap.Int("after_failures", was))
	}
}

func (ep *endpoint) failed(c *Client, err error) {
	ep.mu.Lock()
	ep.failures++
	d := backoffBase << min(ep.failures-1, 10)
	if d > backoffMax {
		d = backoffMax
	}
	ep.retryAt = c.now().Add(d)
	ep.lastErr = err.Error()
	n := ep.failures
	ep.mu.Unlock()
	if n == 1 {
		c.log.Warn("conjur appliance set aside", zap.String("url", ep.url), zap.Duration("retry_in", d), zap.Error(err))
	}
}

// candidates lists URLs to try: those not set aside in configured order, then
// the set-aside ones by earliest retry time (tried rather than failing at once).
func (c *Client) candidates() []*endpoint {
	now := c.now()
	var ready, later []*endpoint
	retry := map[*endpoint]time.Time{}
	for _, ep := range c.eps {
		ep.mu.Lock()
		r := ep.retryAt
		ep.mu.Unlock()
		if r.IsZero() || !now.Before(r) {
			ready = append(ready, ep)
		} else {
			retry[ep] = r
			later = append(later, ep)
		}
	}
	for i := 1; i < len(later); i++ { // insertion sort: a handful of URLs
		for j := i; j > 0 && retry[later[j]].Before(retry[later[j-1]]); j-- {
			later[j], later[j-1] = later[j-1], later[j]
		}
	}
	return append(ready, later...)
}

// --- status -------------------------------------------------------------------

// Status is the client's health for `conjur-swarm status`; it holds no secret.
type Status struct {
	Login, CredentialSource, CredentialFingerprint string
	CredentialSetAt, TokenExpiresAt, LastContact   time.Time
	LastURL                                        string
	LastErrorCode                                  Code
	LastError                                      string
	LastErrorAt                                    time.Time
	URLs                                           []URLStatus
}

// URLStatus is the health of one appliance URL.
type URLStatus struct {
	URL       string
	Healthy   bool
	Failures  int
	RetryAt   time.Time
	LastError string
}

// Status reports the credential in use, the token, the last contact and error,
// and the health of every URL.
func (c *Client) Status() Status {
	var s Status
	c.credMu.Lock()
	gen := c.gen
	switch {
	case c.handoff != nil:
		s.Login, s.CredentialSource = c.handoff.Login, "handoff"
		s.CredentialFingerprint, s.CredentialSetAt = c.handoff.Fingerprint(), c.handoffAt
	default:
		s.Login, s.CredentialSource = c.cfg.Login, c.configuredSource()
		if c.used.source == s.CredentialSource {
			s.CredentialFingerprint, s.CredentialSetAt = c.used.fingerprint, c.used.setAt
			if c.used.login != "" {
				s.Login = c.used.login
			}
		}
	}
	c.credMu.Unlock()

	for _, ep := range c.eps {
		ep.mu.Lock()
		if ep.tok != nil && ep.tok.gen == gen && ep.tok.expiresAt.After(s.TokenExpiresAt) {
			s.TokenExpiresAt = ep.tok.expiresAt
		}
		s.URLs = append(s.URLs, URLStatus{URL: ep.url, Healthy: ep.failures == 0, Failures: ep.failures, RetryAt: ep.retryAt, LastError: ep.lastErr})
		ep.mu.Unlock()
	}

	c.mu.Lock()
	s.LastContact, s.LastURL = c.lastContact, c.lastURL
	s.LastErrorCode, s.LastError, s.LastErrorAt = c.lastErrCode, c.lastErr, c.lastErrAt
	c.mu.Unlock()
	return s
}

func (c *Client) configuredSource() string {
	switch {
	case c.cfg.CredentialFile != "":
		return "file"
	case c.cfg.JWTTokenPath != "":
		return "jwt"
	case c.cfg.APIKey != "":
		return "env"
	}
	return "none"
}

func (c *Client) noteContact(url string) {
	c.mu.Lock()
	c.lastContact, c.lastURL = c.now(), url
	c.mu.Unlock()
}

func (c *Client) noteError(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	c.lastErrCode, c.lastErr, c.lastErrAt = CodeOf(err), err.Error(), c.now()
	c.mu.Unlock()
}

// --- credentials and authentication ----------------------------------------------

// credential returns the credential to authenticate with now: the handoff,
// else the file (re-read), else the JWT file (re-read), else the env key.
func (c *Client) credential() (Credential, string, uint64, error) {
	c.credMu.Lock()
	h, gen := c.handoff, c.gen
	c.credMu.Unlock()
	if h != nil {
		return *h, "handoff", gen, nil
	}
	switch {
	case c.cfg.CredentialFile != "":
		data, err := readSmallFile(c.cfg.CredentialFile)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return Credential{}, "file", gen, &Error{Code: CodeNoCredential, Cause: err,
					Msg: fmt.Sprintf("no Conjur credential yet: the credential file %s does not exist; create it (readable by the plugin only) with the API key of %s, or run the bootstrap agent to hand the credential over", c.cfg.CredentialFile, c.cfg.Login)}
			}
			return Credential{}, "file", gen, &Error{Code: CodeNoCredential, Cause: err,
				Msg: fmt.Sprintf("the credential file %s cannot be read: make it a regular file readable by the plugin", c.cfg.CredentialFile)}
		}
		cred, err := parseCredentialFile(data, c.cfg.Login)
		if err != nil {
			return Credential{}, "file", gen, &Error{Code: CodeCredentialRejected, Cause: err,
				Msg: fmt.Sprintf("the credential file %s is unusable (%v): put the API key of %s in it, or {\"login\":..,\"api_key\":..}", c.cfg.CredentialFile, err, c.cfg.Login)}
		}
		if cred.APIKey != "" && c.cfg.Login != "" && cred.Login != c.cfg.Login {
			return Credential{}, "file", gen, &Error{Code: CodeCredentialRejected,
				Msg: fmt.Sprintf("the credential file %s is for login %s but this plugin is pinned to %s (CONJUR_AUTHN_LOGIN): put the credential of %s in it", c.cfg.CredentialFile, cred.Login, c.cfg.Login, c.cfg.Login)}
		}
		return cred, "file", gen, nil
	case c.cfg.JWTTokenPath != "":
		data, err := readSmallFile(c.cfg.JWTTokenPath)
		jwt := string(trimSpaceBytes(data))
		if err != nil || jwt == "" {
			return Credential{}, "jwt", gen, &Error{Code: CodeNoCredential, Cause: err,
				Msg: fmt.Sprintf("no JWT to authenticate with: the file %s (JWT_TOKEN_PATH) is missing, unreadable or empty; make the JWT available there", c.cfg.JWTTokenPath)}
		}
		return Credential{JWT: jwt}, "jwt", gen, nil
	case c.cfg.APIKey != "":
		return Credential{Login: c.cfg.Login, APIKey: c.cfg.APIKey}, "env", gen, nil
	}
	return Credential{}, "none", gen, c.noCredential()
}

func (c *Client) noCredential() *Error {
	who := c.cfg.Login
	if who == "" {
		who = "the plugin"
	}
	return &Error{Code: CodeNoCredential,
		Msg: fmt.Sprintf("no Conjur credential yet for %s: run the bootstrap agent to hand one over, or set CONJUR_SWARM_CREDENTIAL_FILE", who)}
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, maxCredentialSize+1)
	n, err := readFull(f, buf)
	if err != nil {
		return nil, err
	}
	if n > maxCredentialSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxCredentialSize)
	}
	return buf[:n], nil
}

// authenticate obtains an access token from ep with cred. Refusals come back
// as *Error (answers); transport failures and 5xx as they are (failures).
func (c *Client) authenticate(ctx context.Context, ep *endpoint, cred Credential) (*accessToken, error) {
	var raw []byte
	var err error
	if cred.JWT != "" {
		if ep.jwtAPI == nil {
			return nil, &Error{Code: CodeCredentialRejected,
				Msg: "a JWT credential was given but CONJUR_AUTHN_JWT_SERVICE_ID is not set: set the authn-jwt service id"}
		}
		raw, err = c.bind(ctx, ep.jwtAPI, nil).JWTAuthenticate(cred.JWT, c.cfg.JWTHostID)
	} else {
		raw, err = c.bind(ctx, ep.api, nil).Authenticate(authnLoginPair(cred))
	}
	if err != nil {
		if st := httpStatus(err); st != 0 && isAuthRefusal(st) {
			return nil, c.refused(ep, cred, st, err)
		}
		return nil, err
	}
	tok, err := parseAccessToken(raw, c.now())
	if err != nil {
		return nil, &Error{Code: CodeAuthRefused, Cause: err,
			Msg: fmt.Sprintf("Conjur at %s answered authentication with an unreadable access token: check CONJUR_APPLIANCE_URL points at Conjur", ep.url)}
	}
	tok.base, tok.api = ep.api, withToken(ep.api, tok.raw)
	return tok, nil
}

func isAuthRefusal(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

func (c *Client) refused(ep *endpoint, cred Credential, status int, cause error) *Error {
	if cred.JWT != "" {
		src := "the handed-over JWT"
		if c.cfg.JWTTokenPath != "" {
			src = "the JWT from " + c.cfg.JWTTokenPath
		}
		return &Error{Code: CodeAuthRefused, Cause: cause,
			Msg: fmt.Sprintf("Conjur at %s refused %s for authn-jwt/%s (HTTP %d): check that the JWT is current, that the authenticator is enabled, and that its claims match a host permitted to authenticate", ep.url, src, c.cfg.JWTServiceID, status)}
	}
	if status == http.StatusNotFound {
		return &Error{Code: CodeAuthRefused, Cause: cause,
			Msg: fmt.Sprintf("Conjur at %s does not know account %q (HTTP 404 on authentication): check CONJUR_ACCOUNT", ep.url, c.cfg.Account)}
	}
	return &Error{Code: CodeAuthRefused, Cause: cause,
		Msg: fmt.Sprintf("Conjur at %s refused to authenticate %s (HTTP %d): the API key is wrong or was rotated; hand the current credential over again (bootstrap agent) or update the credential file", ep.url, cred.Login, status)}
}

// authCall is one authentication in flight for an endpoint; callers wait on done.
type authCall struct {
	done chan struct{}
	tok  *accessToken
	err  error
	gen  uint64 // the credential generation it used
}

// token returns a usable access token for ep. It authenticates when there is
// none, when it is near expiry, or when stale is the current token (Conjur
// answered 401 with it). Only one authentication per URL runs at a time;
// concurrent callers wait for it, each honouring its own ctx. Between 80% and
// 95% of the lifetime the current token is returned and a refresh starts in
// the background.
func (c *Client) token(ctx context.Context, ep *endpoint, stale *accessToken) (*accessToken, error) {
	c.credMu.Lock()
	gen := c.gen
	c.credMu.Unlock()
	now := c.now()
	ep.mu.Lock()
	t := ep.tok
	if t != nil && t.gen == gen && t != stale && now.Before(t.staleAt) {
		if !now.Before(t.refreshAt) {
			c.startAuthLocked(ep)
		}
		ep.mu.Unlock()
		return t, nil
	}
	if t != nil && t == stale {
		ep.tok = nil
	}
	call := c.startAuthLocked(ep)
	ep.mu.Unlock()
	if call == nil {
		return nil, errClosed
	}
	select {
	case <-call.done:
		c.credMu.Lock()
		superseded := call.gen != c.gen
		c.credMu.Unlock()
		if superseded { // a handoff replaced the credential it used: authenticate with the current one
			return c.token(ctx, ep, stale)
		}
		if call.err != nil && t != nil && t != stale && t.gen == gen && c.now().Before(t.expiresAt) {
			return t, nil // the refresh failed but the token in hand has not expired: use it
		}
		return call.tok, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startAuthLocked joins or starts the endpoint's authentication. ep.mu is held.
func (c *Client) startAuthLocked(ep *endpoint) *authCall {
	if ep.auth != nil {
		return ep.auth
	}
	call := &authCall{done: make(chan struct{})}
	ok := c.spawn(func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.FetchTimeout)
		defer cancel()
		cred, source, gen, err := c.credential()
		var tok *accessToken
		if err == nil {
			tok, err = c.authenticate(ctx, ep, cred)
		}
		if err != nil {
			c.log.Debug("conjur authentication failed", zap.String("url", ep.url), zap.String("source", source), zap.Error(err))
		}
		if tok != nil {
			tok.gen = gen
			c.noteCredential(source, cred)
			c.log.Debug("conjur access token obtained", zap.String("url", ep.url), zap.String("source", source),
				zap.Time("expires", tok.expiresAt))
		}
		ep.mu.Lock()
		c.credMu.Lock()
		current := c.gen
		c.credMu.Unlock()
		if tok != nil && tok.gen == current {
			ep.tok = tok
		}
		ep.auth = nil
		ep.mu.Unlock()
		call.tok, call.err, call.gen = tok, err, gen
		close(call.done)
	})
	if !ok {
		return nil
	}
	ep.auth = call
	return call
}

func (c *Client) noteCredential(source string, cred Credential) {
	fp := cred.Fingerprint()
	c.credMu.Lock()
	if c.used.fingerprint != fp || c.used.source != source {
		c.used = credUse{source: source, login: cred.Login, fingerprint: fp, setAt: c.now()}
	}
	c.credMu.Unlock()
}

// Adopt is the handoff: it accepts cred only for the configured login,
// authenticates with it first (failing over like a fetch), and only then makes
// it the credential in use. On any error the previous credential stays.
func (c *Client) Adopt(ctx context.Context, cred Credential) (err error) {
	defer func() { c.noteError(err) }()
	c.life.RLock()
	closed := c.closed
	c.life.RUnlock()
	switch {
	case closed:
		return errClosed
	case cred.IsZero():
		return &Error{Code: CodeCredentialRejected, Msg: "the handed-over credential is empty: give {\"login\":..,\"api_key\":..} or {\"jwt\":..}"}
	case cred.JWT != "" && c.cfg.JWTServiceID == "":
		return &Error{Code: CodeCredentialRejected, Msg: "a JWT was handed over but CONJUR_AUTHN_JWT_SERVICE_ID is not set: set the authn-jwt service id, or hand over an API key"}
	case cred.JWT == "" && c.cfg.Login == "":
		return &Error{Code: CodeCredentialRejected, Msg: fmt.Sprintf("a credential for %s was handed over but CONJUR_AUTHN_LOGIN is not set: pin the plugin's login first", cred.Login)}
	case cred.JWT == "" && cred.Login != c.cfg.Login:
		return &Error{Code: CodeCredentialRejected, Msg: fmt.Sprintf("the handed-over credential is for %s but this plugin accepts only %s (CONJUR_AUTHN_LOGIN): hand over the credential of %s, or change the setting", cred.Login, c.cfg.Login, c.cfg.Login)}
	}

	fp := cred.Fingerprint()
	c.credMu.Lock()
	same := c.handoff != nil && c.handoff.Fingerprint() == fp
	gen := c.gen
	c.credMu.Unlock()
	if same && c.hasLiveToken(gen) {
		return nil
	}

	if !c.addWorker() { // Close waits for it and cancels it, as it does fetches
		return errClosed
	}
	defer c.workers.Done()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	var tok *accessToken
	var tokEP *endpoint
	_, err = c.withFailover(ctx, func(ctx context.Context, ep *endpoint) error {
		t, err := c.authenticate(ctx, ep, cred)
		if err == nil {
			tok, tokEP = t, ep
		}
		return err
	})
	if err != nil {
		return c.finalError(ctx, err, "")
	}
	// A JWT names no login: Conjur decides whom it authenticates (the host
	// id, or the token's claims). Hold it to the pinned login too.
	if cred.JWT != "" && c.cfg.Login != "" {
		if sub := tokenSubject(tok.raw); sub != c.cfg.Login {
			if sub == "" {
				sub = "an identity the access token does not name"
			}
			return &Error{Code: CodeCredentialRejected, Msg: fmt.Sprintf("the handed-over JWT authenticates as %s but this plugin accepts only %s (CONJUR_AUTHN_LOGIN): hand over a JWT of %s, or change the setting", sub, c.cfg.Login, c.cfg.Login)}
		}
	}

	held := cred
	c.credMu.Lock()
	c.handoff = &held
	c.handoffAt = c.now()
	c.gen++
	tok.gen = c.gen
	c.used = credUse{source: "handoff", login: cred.Login, fingerprint: fp, setAt: c.handoffAt}
	c.credMu.Unlock()
	tokEP.mu.Lock()
	tokEP.tok = tok
	tokEP.mu.Unlock()
	c.log.Info("conjur credential adopted from handoff", zap.Object("credential", cred), zap.String("url", tokEP.url))
	return nil
}

func (c *Client) hasLiveToken(gen uint64) bool {
	now := c.now()
	for _, ep := range c.eps {
		ep.mu.Lock()
		ok := ep.tok != nil && ep.tok.gen == gen && now.Before(ep.tok.staleAt)
		ep.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}
