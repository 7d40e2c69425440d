package conjurdev

import (
	"crypto/rsa"
	"fmt"
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
	EpHostFactory    = "host-factory"
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
	EpAuthn, EpAuthnJWT, EpAuthnCloud, EpHostFactory, EpLogin, EpRotate, EpSecret, EpSecretSet, EpBatch, EpPolicy,
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
	explicitKey := opts.AdminAPIKey
	if err := opts.defaults(); err != nil {
		return nil, err
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
	s.authenticators = map[string]bool{}
	for _, a := range opts.Authenticators {
		s.authenticators[strings.TrimSpace(a)] = true
	}
	for _, ep := range endpoints {
		s.counts[ep] = new(atomic.Int64)
	}
	s.st.addAdminAndRoot(adminKey, s.now())
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

// defaults checks opts and fills in the defaults: account dev, an 8
// minute token TTL, a generated admin API key, a logger that discards.
func (opts *Options) defaults() error {
	if opts.Account == "" {
		opts.Account = "dev"
	}
	if strings.ContainsAny(opts.Account, ":/ ") {
		return fmt.Errorf("conjurdev: account %q: must not contain ':', '/' or spaces", opts.Account)
	}
	if p := opts.PathPrefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, " ?#%")) {
		return fmt.Errorf("conjurdev: path prefix %q: want /SEGMENT[/SEGMENT...], e.g. /api (no trailing slash, no ?, #, %% or spaces)", p)
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 8 * time.Minute
	}
	if opts.TokenTTL < time.Second {
		return fmt.Errorf("conjurdev: token TTL %s: must be at least 1s", opts.TokenTTL)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.AdminAPIKey == "" {
		k, err := newAPIKey()
		if err != nil {
			return fmt.Errorf("conjurdev: generate the admin API key: %w", err)
		}
		opts.AdminAPIKey = redact.String(k)
	}
	if opts.Authenticators == nil {
		opts.Authenticators = []string{"authn"}
	}
	return nil
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
