package identity

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Algorithm is the JWS algorithm the plugin signs with. Conjur 1.24's
// authn-jwt accepts RS256, RS384 and RS512 only (no ES256).
const Algorithm = "RS256"

// Token lifetime bounds: a JWT is used once, at once, to log in.
const (
	DefaultLifetime = 5 * time.Minute
	MinLifetime     = time.Minute
	MaxLifetime     = 60 * time.Minute
)

// IssuedAtSkew is how far before now a JWT's iat is set: Conjur 1.24
// refuses a JWT whose iat is later than its own clock, with no leeway, so a
// manager whose clock runs a little ahead of Conjur's would be refused.
const IssuedAtSkew = 30 * time.Second

// Claims describe the Get a JWT is signed for. Subject is the identity the
// mapping chose (the sub claim: with token-app-property "sub" and
// identity-path set, Conjur logs in host <identity-path>/<sub>); the others
// let Conjur host annotations authn-jwt/<service-id>/<claim> pin further
// claims. None of them is ever a secret value.
type Claims struct {
	Subject   string // sub
	Service   string // service: the service name
	Stack     string // stack: com.docker.stack.namespace of the service
	ServiceID string // service_id
	TaskID    string // task_id
	NodeID    string // node_id
	Image     string // image
}

// Options configure a Signer.
type Options struct {
	Issuer   string        // iss, required
	Audience string        // aud; "" = no aud claim
	Lifetime time.Duration // exp - iat; 0 = DefaultLifetime
	// Now is the clock (nil = time.Now).
	Now func() time.Time
}

// Signer signs JWTs with the store's current key. It is safe for concurrent
// use; a rotation (by this process or by `conjur-swarm jwks --rotate` in the
// same state directory) takes effect at the next Sign.
type Signer struct {
	store *Store
	opts  Options
}

// NewSigner checks opts and returns a signer over store.
func NewSigner(store *Store, opts Options) (*Signer, error) {
	if store == nil {
		return nil, errors.New("identity: a signer needs a key store")
	}
	if strings.TrimSpace(opts.Issuer) == "" {
		return nil, errors.New("identity: no issuer: set CONJUR_SWARM_IDENTITY_ISSUER to the value of the authn-jwt issuer variable")
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = DefaultLifetime
	}
	if opts.Lifetime < MinLifetime || opts.Lifetime > MaxLifetime {
		return nil, fmt.Errorf("identity: token lifetime %s: want between 1m and %s", opts.Lifetime, MaxLifetime)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Signer{store: store, opts: opts}, nil
}

// Issuer returns the iss claim the signer writes.
func (s *Signer) Issuer() string { return s.opts.Issuer }

// KeyID returns the kid of the key that signs now.
func (s *Signer) KeyID() string { return s.store.Current().ID }

// Sign returns a JWT for c, valid from now for the signer's lifetime, and
// its expiry. The JWT is a credential: it is returned redacted.
func (s *Signer) Sign(c Claims) (redact.String, time.Time, error) {
	if c.Subject == "" {
		return "", time.Time{}, errors.New("identity: a JWT needs a subject (the identity the mapping chose)")
	}
	now := s.opts.Now()
	exp := now.Add(s.opts.Lifetime)
	mc := jwt.MapClaims{
		"iss": s.opts.Issuer,
		"sub": c.Subject,
		"iat": now.Add(-IssuedAtSkew).Unix(),
		"exp": exp.Unix(),
	}
	if s.opts.Audience != "" {
		mc["aud"] = s.opts.Audience
	}
	for name, v := range map[string]string{
		"service": c.Service, "stack": c.Stack, "service_id": c.ServiceID,
		"task_id": c.TaskID, "node_id": c.NodeID, "image": c.Image,
	} {
		if v != "" {
			mc[name] = v
		}
	}
	if err := s.store.Refresh(); err != nil {
		return "", time.Time{}, err
	}
	key := s.store.Current()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, mc)
	t.Header["kid"] = key.ID
	signed, err := t.SignedString(key.private)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("identity: sign a JWT for %q with key %s: %w", c.Subject, key.ID, err)
	}
	return redact.String(signed), time.Unix(exp.Unix(), 0), nil
}
