package conjurdev

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// authn-jwt is configured in policy as Conjur does it: a webservice
// conjur/authn-jwt/<service-id>, variables below it (public-keys, issuer,
// audience, token-app-property, identity-path), and the `authenticate`
// privilege on the webservice for each host that may log in. Enabling
// follows Options.Authenticators (nil: every configured service is
// enabled), overridable with PATCH /authn-jwt/<id>/<account>.
// jwks-uri is not fetched: the dev server makes no outbound calls.

const jwtPrefix = "conjur/authn-jwt/"

type jwtConfig struct {
	keys         map[string]*rsa.PublicKey // kid -> key
	issuer       string
	audience     string
	appProperty  string
	identityPath string
}

// jwtServiceLocked returns the webservice of service id and its settings.
// The caller holds s.mu.
func (s *Server) jwtServiceLocked(service string) (*resource, jwtConfig, error) {
	ws, ok := s.st.resources[s.st.fullID("webservice", jwtPrefix+service)]
	if !ok {
		return nil, jwtConfig{}, fmt.Errorf("authn-jwt/%s is not configured: declare webservice %s%s in policy", service, jwtPrefix, service)
	}
	get := func(name string) (string, bool) {
		v, ok := s.st.resources[s.st.fullID("variable", jwtPrefix+service+"/"+name)]
		if !ok {
			return "", false
		}
		sv, ok := v.latest()
		return strings.TrimSpace(string(sv.value)), ok
	}
	var cfg jwtConfig
	pk, okPK := get("public-keys")
	if _, okURI := get("jwks-uri"); okURI && !okPK {
		return nil, cfg, fmt.Errorf("authn-jwt/%s uses jwks-uri, which the dev server does not fetch: set public-keys instead", service)
	}
	if !okPK {
		return nil, cfg, fmt.Errorf("authn-jwt/%s has no public-keys value", service)
	}
	keys, err := parsePublicKeys(pk)
	if err != nil {
		return nil, cfg, fmt.Errorf("authn-jwt/%s public-keys: %w", service, err)
	}
	cfg.keys = keys
	var okIss bool
	if cfg.issuer, okIss = get("issuer"); !okIss || cfg.issuer == "" {
		return nil, cfg, fmt.Errorf("authn-jwt/%s: public-keys needs an issuer value", service)
	}
	cfg.audience, _ = get("audience")
	cfg.appProperty, _ = get("token-app-property")
	cfg.identityPath, _ = get("identity-path")
	return ws, cfg, nil
}

// parsePublicKeys reads Conjur's public-keys value:
// {"type":"jwks","value":{"keys":[{"kty":"RSA","kid":..,"n":..,"e":..}]}}.
func parsePublicKeys(text string) (map[string]*rsa.PublicKey, error) {
	var v struct {
		Type  string `json:"type"`
		Value struct {
			Keys []struct {
				Kty string `json:"kty"`
				Kid string `json:"kid"`
				N   string `json:"n"`
				E   string `json:"e"`
			} `json:"keys"`
		} `json:"value"`
	}
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, errors.New(`not JSON of the form {"type":"jwks","value":{"keys":[...]}}`)
	}
	if v.Type != "jwks" {
		return nil, fmt.Errorf(`type %q: want "jwks"`, v.Type)
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range v.Value.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("key %q: n and e must be base64url", k.Kid)
		}
		exp := 0
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
	}
	if len(out) == 0 {
		return nil, errors.New("no RSA keys")
	}
	return out, nil
}

// jwtEnabledLocked is Conjur's rule: a service is enabled when
// CONJUR_AUTHENTICATORS (Options.Authenticators) lists it or when it was
// enabled through the API; the two are added together.
func (s *Server) jwtEnabledLocked(service string) bool {
	return s.authnEnabled("authn-jwt/"+service) || s.st.jwtEnabled[service]
}

// claimAt looks up a claim by a "/"-separated path into nested objects.
func claimAt(claims jwt.MapClaims, path string) (string, bool) {
	var cur any = map[string]any(claims)
	for _, part := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[part]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, v != ""
	case float64, bool:
		return fmt.Sprint(v), true
	}
	return "", false
}

func (s *Server) authenticateJWT(w http.ResponseWriter, r *http.Request) {
	service := r.PathValue("service")
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		unauthorized(w, "")
		return
	}
	form, _ := url.ParseQuery(string(body))
	raw := form.Get("jwt")
	if raw == "" {
		s.log.Info("authn-jwt refused", zap.String("service", service), zap.Int("status", http.StatusBadRequest), zap.String("reason", "CONJ00009E Field 'jwt' is missing or empty in request body"))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	deny := func(status int, reason string) {
		s.log.Info("authn-jwt refused", zap.String("service", service), zap.Int("status", status), zap.String("reason", reason))
		if status == http.StatusUnauthorized {
			unauthorized(w, "")
			return
		}
		w.WriteHeader(status)
	}
	if r.PathValue("account") != s.account {
		deny(http.StatusUnauthorized, "unknown account")
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ws, cfg, err := s.jwtServiceLocked(service)
	if err != nil {
		deny(http.StatusUnauthorized, err.Error())
		return
	}
	if !s.jwtEnabledLocked(service) {
		deny(http.StatusUnauthorized, "authn-jwt/"+service+" is not enabled")
		return
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(cfg.issuer),
		jwt.WithTimeFunc(s.now),
		jwt.WithLeeway(time.Second),
	}
	if cfg.audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.audience))
	}
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(opts...).ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if kid, ok := t.Header["kid"].(string); ok {
			if k, ok := cfg.keys[kid]; ok {
				return k, nil
			}
			return nil, fmt.Errorf("no public key with kid %q", kid)
		}
		if len(cfg.keys) == 1 {
			for _, k := range cfg.keys {
				return k, nil
			}
		}
		return nil, errors.New("the JWT has no kid and there are several keys")
	})
	if errors.Is(err, jwt.ErrTokenExpired) {
		s.log.Info("authn-jwt refused", zap.String("service", service), zap.Int("status", http.StatusUnauthorized), zap.String("reason", "the JWT expired"))
		writeError(w, &StatusError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "CONJ00016E Token expired"})
		return
	}
	if err != nil {
		deny(http.StatusUnauthorized, "JWT rejected: "+err.Error())
		return
	}
	var role string
	urlHost := r.PathValue("host")
	switch {
	case cfg.appProperty != "" && urlHost != "":
		deny(http.StatusUnauthorized, "token-app-property is set, so the host id must not be in the URL")
		return
	case cfg.appProperty != "":
		v, ok := claimAt(claims, cfg.appProperty)
		if !ok {
			deny(http.StatusUnauthorized, "the JWT has no claim "+cfg.appProperty)
			return
		}
		ident := v
		if p := strings.Trim(cfg.identityPath, "/"); p != "" {
			ident = p + "/" + v
		}
		role = s.st.fullID("host", ident)
	case urlHost != "":
		role = s.loginRole(urlHost)
	default:
		deny(http.StatusUnauthorized, "no host id: set token-app-property or put the host id in the URL")
		return
	}
	host, ok := s.st.resources[role]
	if !ok || host.kind != "host" {
		deny(http.StatusUnauthorized, "no host "+role)
		return
	}
	if !s.st.can(role, ws, "authenticate") {
		deny(http.StatusForbidden, role+" lacks authenticate on "+ws.id)
		return
	}
	prefix := "authn-jwt/" + service + "/"
	for name, a := range host.annotations {
		claim, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		if v, ok := claimAt(claims, claim); !ok || v != a.value {
			deny(http.StatusUnauthorized, "claim "+claim+" does not match the host's annotation")
			return
		}
	}
	s.writeToken(w, r, loginOf(role))
}

func (s *Server) enableJWT(w http.ResponseWriter, r *http.Request, c caller) {
	service := r.PathValue("service")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	form, _ := url.ParseQuery(string(body))
	on := form.Get("enabled")
	if on != "true" && on != "false" {
		writeError(w, &StatusError{Status: http.StatusUnprocessableEntity, Code: "argument_error", Message: "enabled must be true or false"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.st.resources[s.st.fullID("webservice", jwtPrefix+service)]
	if !ok || r.PathValue("account") != s.account || !s.st.visible(c.role, ws) {
		writeError(w, notFound(s.st.fullID("webservice", jwtPrefix+service)))
		return
	}
	if !s.st.can(c.role, ws, "update") {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	s.st.jwtEnabled[service] = on == "true"
	s.saveLocked()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) statusJWT(w http.ResponseWriter, r *http.Request, c caller) {
	service := r.PathValue("service")
	s.mu.RLock()
	defer s.mu.RUnlock()
	ws, _, err := s.jwtServiceLocked(service)
	if err == nil && !s.jwtEnabledLocked(service) {
		err = fmt.Errorf("authn-jwt/%s is not enabled", service)
	}
	if ws != nil && !s.st.can(c.role, ws, "read") {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"status": "error", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) listAuthenticators(w http.ResponseWriter, _ *http.Request) {
	s.mu.RLock()
	configured := []string{"authn"}
	enabled := []string{}
	if s.authnEnabled("authn") {
		enabled = append(enabled, "authn")
	}
	for _, res := range s.st.resources {
		service, ok := strings.CutPrefix(res.ident, jwtPrefix)
		if res.kind != "webservice" || !ok || service == "" || strings.Contains(service, "/") {
			continue
		}
		configured = append(configured, "authn-jwt/"+service)
		if s.jwtEnabledLocked(service) {
			enabled = append(enabled, "authn-jwt/"+service)
		}
	}
	s.mu.RUnlock()
	slices.Sort(configured)
	slices.Sort(enabled)
	writeJSON(w, http.StatusOK, map[string][]string{
		"installed":  {"authn", "authn-jwt"},
		"configured": configured,
		"enabled":    enabled,
	})
}

// JWTIssuer signs JWTs with an RSA key, standing in for an identity
// provider in tests and demos.
type JWTIssuer struct {
	issuer string
	kid    string
	key    *rsa.PrivateKey
}

// NewJWTIssuer makes an issuer with a fresh RSA key pair.
func NewJWTIssuer(issuer string) (*JWTIssuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("conjurdev: generate the JWT signing key: %w", err)
	}
	sum := sha256.Sum256(key.N.Bytes())
	return &JWTIssuer{issuer: issuer, kid: hex.EncodeToString(sum[:8]), key: key}, nil
}

// Issuer is the iss claim the issuer signs with.
func (j *JWTIssuer) Issuer() string { return j.issuer }

// PublicKeysJSON is the value for an authn-jwt public-keys variable.
func (j *JWTIssuer) PublicKeysJSON() string {
	e := big.NewInt(int64(j.key.E)).Bytes()
	v := map[string]any{
		"type": "jwks",
		"value": map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": j.kid,
			"n": base64.RawURLEncoding.EncodeToString(j.key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(e),
		}}},
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Sign returns an RS256 JWT with claims plus iss, iat and exp (now + ttl)
// unless claims set them.
func (j *JWTIssuer) Sign(claims map[string]any, ttl time.Duration) (string, error) {
	now := time.Now()
	mc := jwt.MapClaims{"iss": j.issuer, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	for k, v := range claims {
		mc[k] = v
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, mc)
	t.Header["kid"] = j.kid
	out, err := t.SignedString(j.key)
	if err != nil {
		return "", fmt.Errorf("conjurdev: sign a JWT: %w", err)
	}
	return out, nil
}

// redacted stands for the signing key when an issuer is printed.
const redacted = redact.Marker

// String names the issuer and its key id, never the key. (%#v prints the
// key field as a pointer.)
func (j *JWTIssuer) String() string {
	if j == nil {
		return "conjurdev.JWTIssuer(nil)"
	}
	return fmt.Sprintf("conjurdev.JWTIssuer{Issuer:%q Kid:%q Key:%s}", j.issuer, j.kid, redacted)
}
