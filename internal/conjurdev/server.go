package conjurdev

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Version is the Conjur version the server reports.
const Version = "1.24.0"

// Options configure a Server. The zero value is usable.
type Options struct {
	// Account is the Conjur account (default "dev").
	Account string
	// AdminAPIKey is the API key of the admin user; "" generates one.
	AdminAPIKey redact.String
	// TokenTTL is the access token lifetime (default 8m, as Conjur).
	TokenTTL time.Duration
	// Logger receives one debug line per request (never values, keys or
	// tokens); nil discards.
	Logger *zap.Logger
	// PathPrefix serves the whole API under this path ("/api"), as Conjur
	// Cloud does; a request outside it answers 404. Listener.URL includes
	// it. "" serves at the root, as self-hosted Conjur.
	PathPrefix string
	// StateDir, when set, keeps the CA, the token key, the API keys, the
	// policy, the values and their versions in this directory (created
	// 0700, files 0600) and reloads them on start, so that a restart can be
	// rehearsed. For rehearsals only: the files hold keys and values in
	// plain text. "" keeps everything in memory.
	StateDir string
	// Authenticators lists the enabled authenticators the way Conjur's
	// CONJUR_AUTHENTICATORS does ("authn", "authn-jwt/<service-id>").
	// nil means "authn" alone, as in Conjur when the variable is unset: an
	// authn-jwt service configured in policy stays disabled until it is
	// listed here or enabled with PATCH /authn-jwt/<id>/<account>
	// (EnableAuthenticator), which adds to this list as Conjur's database
	// setting does.
	Authenticators []string
	// IAM are the AWS identities authn-iam's stand-in for STS knows: a
	// GetCallerIdentity request signed with one of their keys is
	// answered with its ARN. The dev server never calls AWS.
	IAM []IAMIdentity
	// ProviderKeys are the signing keys of the identity providers
	// authn-azure and authn-gcp trust, by issuer (authn-azure: its
	// provider-uri with one trailing "/", e.g.
	// https://sts.windows.net/<tenant>/; authn-gcp:
	// https://accounts.google.com), each a JWKS {"keys":[...]} of RSA keys
	// (JWTIssuer.JWKS). The dev server never fetches them.
	ProviderKeys map[string]string
}

// Endpoint names used by Count and Counts.
const (
	EpAuthn          = "authn"
	EpAuthnJWT       = "authn-jwt"
	EpAuthnCloud     = "authn-cloud" // authn-iam, authn-azure, authn-gcp, authn-cert
	EpLogin          = "login"
	EpRotate         = "rotate"
	EpSecret         = "secret"
	EpSecretSet      = "secret-set"
	EpBatch          = "batch"
	EpPolicy         = "policy"
	EpResources      = "resources"
	EpWhoami         = "whoami"
	EpInfo           = "info"
	EpAuthenticators = "authenticators"
	EpRoles          = "roles"
	EpOther          = "other"
)

var endpoints = []string{
	EpAuthn, EpAuthnJWT, EpAuthnCloud, EpLogin, EpRotate, EpSecret, EpSecretSet, EpBatch, EpPolicy,
	EpResources, EpWhoami, EpInfo, EpAuthenticators, EpRoles, EpOther,
}

// Server is an in-memory Conjur. It is an http.Handler and safe for
// concurrent use.
type Server struct {
	account  string
	ttl      time.Duration
	log      *zap.Logger
	adminKey atomic.Pointer[string]

	mu     sync.RWMutex // guards st
	st     *store
	loadMu sync.Mutex // one policy load at a time; others answer 409

	tokens *tokenSigner
	faults Faults
	counts map[string]*atomic.Int64
	reqLog requestLog
	mux    *http.ServeMux

	authenticators map[string]bool // enabled by Options (CONJUR_AUTHENTICATORS)
	iam            []IAMIdentity
	providerKeys   map[string]map[string]*rsa.PublicKey // issuer -> kid -> key

	// clock, settable in tests.
	clockMu sync.RWMutex
	clock   func() time.Time

	prefix    string       // Options.PathPrefix
	handler   http.Handler // the mux, under prefix
	stateDir  string
	restored  bool       // New loaded the store from stateDir
	persistMu sync.Mutex // one writer of the state file at a time

	caOnce sync.Once
	ca     *certAuthority
	caErr  error
}

// New builds a Server holding the admin user and the root policy.
func New(opts Options) (*Server, error) {
	if opts.Account == "" {
		opts.Account = "dev"
	}
	if strings.ContainsAny(opts.Account, ":/ ") {
		return nil, fmt.Errorf("conjurdev: account %q: must not contain ':', '/' or spaces", opts.Account)
	}
	if p := opts.PathPrefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, " ?#%")) {
		return nil, fmt.Errorf("conjurdev: path prefix %q: want /SEGMENT[/SEGMENT...], e.g. /api (no trailing slash, no ?, #, %% or spaces)", p)
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 8 * time.Minute
	}
	if opts.TokenTTL < time.Second {
		return nil, fmt.Errorf("conjurdev: token TTL %s: must be at least 1s", opts.TokenTTL)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	explicitKey := opts.AdminAPIKey
	if opts.AdminAPIKey == "" {
		k, err := newAPIKey()
		if err != nil {
			return nil, fmt.Errorf("conjurdev: generate the admin API key: %w", err)
		}
		opts.AdminAPIKey = redact.String(k)
	}
	providerKeys, err := parseProviderKeys(opts.ProviderKeys)
	if err != nil {
		return nil, err
	}
	signer, err := newTokenSigner()
	if err != nil {
		return nil, fmt.Errorf("conjurdev: generate the token key: %w", err)
	}
	s := &Server{
		account: opts.Account,
		ttl:     opts.TokenTTL,
		log:     opts.Logger,
		st:      newStore(opts.Account),
		tokens:  signer,
		counts:  map[string]*atomic.Int64{},
		clock:   time.Now,
		iam:     slices.Clone(opts.IAM),

		providerKeys: providerKeys,
	}
	adminKey := opts.AdminAPIKey.Reveal()
	s.adminKey.Store(&adminKey)
	if opts.Authenticators == nil {
		opts.Authenticators = []string{"authn"}
	}
	s.authenticators = map[string]bool{}
	for _, a := range opts.Authenticators {
		s.authenticators[strings.TrimSpace(a)] = true
	}
	for _, ep := range endpoints {
		s.counts[ep] = new(atomic.Int64)
	}
	now := s.now()
	admin := &resource{
		id: s.st.fullID("user", "admin"), kind: "user", ident: "admin", created: now,
		annotations: map[string]annotation{}, permits: map[string]map[string]string{},
		apiKey: adminKey,
	}
	root := &resource{
		id: s.st.fullID("policy", "root"), kind: "policy", ident: "root", created: now,
		annotations: map[string]annotation{}, permits: map[string]map[string]string{},
	}
	admin.policy, root.policy = root.id, root.id
	s.st.resources[admin.id] = admin
	s.st.resources[root.id] = root
	s.st.setOwner(admin, admin.id)
	s.st.setOwner(root, admin.id)
	if opts.StateDir != "" {
		s.stateDir = opts.StateDir
		if err := openStateDir(opts.StateDir); err != nil {
			return nil, err
		}
		if err := s.restoreState(opts.StateDir, explicitKey.Reveal()); err != nil {
			return nil, err
		}
		if !s.restored {
			if err := s.persistLocked(); err != nil {
				return nil, err
			}
		}
	}
	s.routes()
	s.prefix, s.handler = opts.PathPrefix, s.mux
	if s.prefix != "" {
		s.handler = http.StripPrefix(s.prefix, s.mux)
	}
	return s, nil
}

// PathPrefix is the path the API is served under ("" for the root).
func (s *Server) PathPrefix() string { return s.prefix }

func (s *Server) now() time.Time {
	s.clockMu.RLock()
	defer s.clockMu.RUnlock()
	return s.clock()
}

// Account is the server's Conjur account.
func (s *Server) Account() string { return s.account }

// AdminAPIKey is the admin user's current API key.
func (s *Server) AdminAPIKey() string { return *s.adminKey.Load() }

// Faults are the server's failure switches.
func (s *Server) Faults() *Faults { return &s.faults }

// Count is how many requests endpoint has seen, faulted ones included.
func (s *Server) Count(endpoint string) int64 {
	if c, ok := s.counts[endpoint]; ok {
		return c.Load()
	}
	return 0
}

// Counts is every endpoint's request count.
func (s *Server) Counts() map[string]int64 {
	out := make(map[string]int64, len(s.counts))
	for k, c := range s.counts {
		out[k] = c.Load()
	}
	return out
}

// ResetCounts sets every counter to zero.
func (s *Server) ResetCounts() {
	for _, c := range s.counts {
		c.Store(0)
	}
}

// ExpireTokens makes every access token issued so far invalid (401).
func (s *Server) ExpireTokens() {
	if err := s.tokens.rotate(); err != nil {
		// crypto/rand does not fail on supported platforms; keep the old
		// key rather than serve without one.
		s.log.Error("rotate the token key", zap.Error(err))
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.saveLocked()
}

// LoadConjurPolicy loads a policy document as the admin user. branch is "root"
// or a policy id such as "apps/x".
func (s *Server) LoadConjurPolicy(mode LoadMode, branch string, body []byte) (LoadResult, error) {
	switch mode {
	case ModePost, ModePatch, ModePut:
	default:
		return LoadResult{}, fmt.Errorf("conjurdev: load mode %q: want POST, PATCH or PUT", mode)
	}
	if !s.loadMu.TryLock() {
		return LoadResult{}, errConflict()
	}
	defer s.loadMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	full, err := s.branchID(branch)
	if err != nil {
		return LoadResult{}, err
	}
	return s.loadConjurPolicyLocked(mode, full, body)
}

// branchID turns "root", "apps/x" or "acct:policy:apps/x" into a full
// policy id of an existing policy. The caller holds s.mu.
func (s *Server) branchID(branch string) (string, error) {
	if _, kind, ident, ok := splitID(branch); ok && kind == "policy" {
		branch = ident
	}
	branch = strings.Trim(branch, "/")
	if branch == "" {
		branch = "root"
	}
	full := s.st.fullID("policy", branch)
	if _, ok := s.st.resources[full]; !ok {
		return "", notFound(full)
	}
	return full, nil
}

// roleID turns "host:x", "acct:host:x", "host/x" or "admin" into a full
// role id.
func (s *Server) roleID(id string) string {
	if _, _, _, ok := splitID(id); ok {
		return id
	}
	if kind, ident, ok := strings.Cut(id, ":"); ok {
		return s.st.fullID(kind, ident)
	}
	return s.loginRole(id)
}

// loginRole maps a login ("host/apps/x" or a user name) to a full role id.
func (s *Server) loginRole(login string) string {
	if kind, ident, ok := strings.Cut(login, "/"); ok && roleKinds[kind] && kind != "policy" {
		return s.st.fullID(kind, ident)
	}
	return s.st.fullID("user", login)
}

// loginOf maps a full role id to its login.
func loginOf(full string) string {
	_, kind, ident, _ := splitID(full)
	if kind == "user" {
		return ident
	}
	return kind + "/" + ident
}

// SetSecret stores a new value of a variable ("apps/demo/db-password").
func (s *Server) SetSecret(variableID string, value []byte) error {
	if len(value) == 0 {
		return errors.New("conjurdev: set secret: the value is empty (Conjur refuses empty values)")
	}
	full := s.st.fullID("variable", strings.TrimPrefix(variableID, s.account+":variable:"))
	s.mu.Lock()
	defer s.mu.Unlock()
	res, ok := s.st.resources[full]
	if !ok {
		return fmt.Errorf("conjurdev: set secret: %w", notFound(full))
	}
	res.addValue(value)
	s.saveLocked()
	return nil
}

// APIKey is the API key of a user or host ("host:swarm/x" or
// "dev:host:swarm/x").
func (s *Server) APIKey(roleID string) (string, error) {
	full := s.roleID(roleID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	res, ok := s.st.resources[full]
	if !ok || (res.kind != "user" && res.kind != "host") {
		return "", fmt.Errorf("conjurdev: API key of %q: %w", roleID, notFound(full))
	}
	return res.apiKey, nil
}

// RotateAPIKey gives a user or host a new API key and returns it.
func (s *Server) RotateAPIKey(roleID string) (string, error) {
	full := s.roleID(roleID)
	s.mu.Lock()
	defer s.mu.Unlock()
	res, ok := s.st.resources[full]
	if !ok || (res.kind != "user" && res.kind != "host") {
		return "", fmt.Errorf("conjurdev: rotate the API key of %q: %w", roleID, notFound(full))
	}
	return s.rotateLocked(res)
}

func (s *Server) rotateLocked(res *resource) (string, error) {
	key, err := newAPIKey()
	if err != nil {
		return "", fmt.Errorf("conjurdev: generate an API key: %w", err)
	}
	res.apiKey = key
	if res.id == s.st.fullID("user", "admin") {
		s.adminKey.Store(&key)
	}
	s.saveLocked()
	return key, nil
}

// newAPIKey returns a random key in Conjur's style: 55 characters of a
// lower-case base32 alphabet.
func newAPIKey() (string, error) {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	b := make([]byte, 55)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

// StatusError is an error the server answers with an HTTP status and a
// Conjur error body. Go callers of LoadConjurPolicy and friends receive it too.
type StatusError struct {
	Status    int
	Code      string // Conjur's error code: not_found, policy_invalid, ...
	Message   string
	Target    string // not_found: the kind
	ID        string // not_found: the full id
	Line, Col int    // policy_invalid: where
	Filename  string // policy_invalid: the policy loaded (parse errors only)

	// validation_failed: the field and what is wrong with it.
	Field, FieldMessage string

	RetryAfter int // seconds, sent as Retry-After when > 0 (409 policy_conflict)
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func errConflict() *StatusError {
	return &StatusError{
		Status: http.StatusConflict, Code: "policy_conflict",
		Message:    "Concurrent policy load in progress, please retry",
		RetryAfter: 1 + mrand.IntN(8),
	}
}

// body is the JSON error body Conjur sends for e.
func (e *StatusError) body() []byte {
	type details struct {
		Code    string `json:"code"`
		Target  string `json:"target"`
		Message string `json:"message"`
	}
	type inner struct {
		Code     string `json:"code"`
		Filename string `json:"filename"`
		Line     int    `json:"line"`
		Col      int    `json:"column"`
	}
	type errObj struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		Target     string `json:"target,omitempty"`
		Details    any    `json:"details,omitempty"`
		InnerError *inner `json:"innererror,omitempty"`
	}
	o := errObj{Code: e.Code, Message: e.Message, Target: e.Target}
	switch {
	case e.ID != "":
		o.Details = &details{Code: e.Code, Target: "id", Message: e.ID}
	case e.Field != "":
		// Sequel validation errors list every field as an array.
		o.Details = []details{{Code: e.Code, Target: e.Field, Message: e.FieldMessage}}
	}
	if e.Code == "policy_invalid" && e.Filename != "" {
		o.InnerError = &inner{Code: "policy_invalid", Filename: e.Filename, Line: e.Line, Col: e.Col}
	}
	b, _ := json.Marshal(map[string]errObj{"error": o})
	return b
}
