package conjurdev

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

var (
	issuerOnce sync.Once
	issuer     *JWTIssuer
	issuerErr  error
)

// testIssuer shares one RSA key across tests (generating one is slow
// under -race).
func testIssuer(t testing.TB) *JWTIssuer {
	t.Helper()
	issuerOnce.Do(func() { issuer, issuerErr = NewJWTIssuer("https://issuer.example") })
	if issuerErr != nil {
		t.Fatal(issuerErr)
	}
	return issuer
}

const jwtPolicy = `
- !policy
  id: conjur/authn-jwt/swarm
  body:
  - !webservice
  - !webservice status
  - !variable public-keys
  - !variable issuer
  - !variable audience
  - !group apps
  - !permit
    role: !group apps
    privilege: [ read, authenticate ]
    resource: !webservice
  - !permit
    role: !group apps
    privilege: read
    resource: !webservice status
- !policy
  id: jwt-apps
  body:
  - !host
    id: svc-a
    annotations:
      authn-jwt/swarm/project: blue
  - !host svc-b
- !host
  id: swarm/conjur-plugin
  annotations:
    authn-jwt/swarm/sub: anything
- !grant
  role: !group conjur/authn-jwt/swarm/apps
  members: [ !host jwt-apps/svc-a, !host swarm/conjur-plugin ]
- !permit
  role: !host jwt-apps/svc-a
  privilege: execute
  resource: !variable apps/demo/db-password
`

// jwtEnv configures authn-jwt/swarm; appProperty "" means the host id
// comes in the URL.
func jwtEnv(t *testing.T, appProperty string, opts ...func(*Options)) (*env, *JWTIssuer) {
	t.Helper()
	enable := func(o *Options) { o.Authenticators = []string{"authn", "authn-jwt/swarm"} }
	e := newEnv(t, append([]func(*Options){enable}, opts...)...)
	iss := testIssuer(t)
	if _, err := e.srv.LoadConjurPolicy(ModePatch, "root", []byte(jwtPolicy)); err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{
		"public-keys": iss.PublicKeysJSON(),
		"issuer":      iss.Issuer(),
		"audience":    "conjur-swarm",
	}
	if appProperty != "" {
		// Declared only in this mode: Conjur takes the identity from the
		// token whenever token-app-property is declared.
		decl := "- !variable conjur/authn-jwt/swarm/token-app-property\n- !variable conjur/authn-jwt/swarm/identity-path\n"
		if _, err := e.srv.LoadConjurPolicy(ModePost, "root", []byte(decl)); err != nil {
			t.Fatal(err)
		}
		vals["token-app-property"] = appProperty
		vals["identity-path"] = "jwt-apps"
	}
	for k, v := range vals {
		if err := e.srv.SetSecret("conjur/authn-jwt/swarm/"+k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return e, iss
}

func (e *env) jwtClient(jwt, hostID string) *conjurapi.Client {
	e.t.Helper()
	cfg := e.config()
	cfg.AuthnType = "jwt"
	cfg.ServiceID = "swarm"
	cfg.JWTContent = jwt
	cfg.JWTHostID = hostID
	c, err := conjurapi.NewClientFromJwt(cfg)
	if err != nil {
		e.t.Fatalf("NewClientFromJwt: %v", err)
	}
	e.t.Cleanup(func() { c.GetHttpClient().CloseIdleConnections() })
	return c
}

func TestAuthnJWT_tokenAppProperty(t *testing.T) {
	e, iss := jwtEnv(t, "sub")
	sign := func(claims map[string]any, ttl time.Duration) string {
		tok, err := iss.Sign(claims, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name   string
		jwt    string
		status int
	}{
		{"ok/svc-a", sign(map[string]any{"sub": "svc-a", "aud": "conjur-swarm", "project": "blue"}, time.Minute), 0},
		{"fail/expired", sign(map[string]any{"sub": "svc-a", "aud": "conjur-swarm", "project": "blue", "exp": time.Now().Add(-time.Hour).Unix()}, time.Minute), 401},
		{"fail/wrong-audience", sign(map[string]any{"sub": "svc-a", "aud": "other", "project": "blue"}, time.Minute), 401},
		{"fail/wrong-issuer", sign(map[string]any{"sub": "svc-a", "aud": "conjur-swarm", "project": "blue", "iss": "https://evil"}, time.Minute), 401},
		{"fail/annotation-claim-mismatch", sign(map[string]any{"sub": "svc-a", "aud": "conjur-swarm", "project": "red"}, time.Minute), 401},
		{"fail/no-authenticate-privilege", sign(map[string]any{"sub": "svc-b", "aud": "conjur-swarm"}, time.Minute), 403},
		{"fail/unknown-host", sign(map[string]any{"sub": "svc-zzz", "aud": "conjur-swarm"}, time.Minute), 401},
		{"fail/unsigned", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdmMtYSJ9.", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.jwtClient(tt.jwt, "")
			got, err := c.RetrieveSecret("apps/demo/db-password")
			if tt.status != 0 {
				if statusOf(err) != tt.status {
					t.Fatalf("error %v, want %d", err, tt.status)
				}
				return
			}
			if err != nil || string(got) != "demo-db-password-0001" {
				t.Fatalf("RetrieveSecret = %q, %v", got, err)
			}
			b, _ := c.WhoAmI()
			var who map[string]string
			_ = json.Unmarshal(b, &who)
			if who["username"] != "host/jwt-apps/svc-a" {
				t.Errorf("whoami %s, want host/jwt-apps/svc-a", b)
			}
		})
	}
}

func TestAuthnJWT_hostInURL(t *testing.T) {
	e, iss := jwtEnv(t, "")
	tok, err := iss.Sign(map[string]any{"sub": "anything", "aud": "conjur-swarm"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c := e.jwtClient(tok, "host/swarm/conjur-plugin")
	if got, err := c.RetrieveSecret("apps/shop/api-token"); err != nil || string(got) != "shop-api-token-0001" {
		t.Fatalf("RetrieveSecret = %q, %v", got, err)
	}
	// No host id and no token-app-property: refused.
	if _, err := e.jwtClient(tok, "").RetrieveSecret("apps/shop/api-token"); statusOf(err) != 401 {
		t.Fatalf("without a host id: %v, want 401", err)
	}
	// A missing jwt field is a bad request.
	resp, _ := e.do("POST", "/authn-jwt/swarm/dev/"+url.PathEscape("host/swarm/conjur-plugin")+"/authenticate", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != 400 {
		t.Fatalf("missing jwt: %d, want 400", resp.StatusCode)
	}
}

func TestAuthnJWT_enabling(t *testing.T) {
	t.Run("fail/not-listed", func(t *testing.T) {
		e, iss := jwtEnv(t, "sub", func(o *Options) { o.Authenticators = []string{"authn"} })
		tok, _ := iss.Sign(map[string]any{"sub": "svc-a", "aud": "conjur-swarm", "project": "blue"}, time.Minute)
		if _, err := e.jwtClient(tok, "").RetrieveSecret("apps/demo/db-password"); statusOf(err) != 401 {
			t.Fatalf("disabled service: %v, want 401", err)
		}
		// The admin enables it as with Conjur's API.
		if err := e.admin().EnableAuthenticator("jwt", "swarm", true); err != nil {
			t.Fatalf("EnableAuthenticator: %v", err)
		}
		if _, err := e.jwtClient(tok, "").RetrieveSecret("apps/demo/db-password"); err != nil {
			t.Fatalf("enabled service: %v", err)
		}
		st, err := e.admin().AuthenticatorStatus("jwt", "swarm")
		if err != nil || st.Status != "ok" {
			t.Fatalf("status %+v, %v", st, err)
		}
	})
	t.Run("fail/configured-is-not-enabled-by-default", func(t *testing.T) {
		// Conjur without CONJUR_AUTHENTICATORS enables authn alone; a
		// service configured in policy waits for the API to enable it.
		e, iss := jwtEnv(t, "sub", func(o *Options) { o.Authenticators = nil })
		tok, _ := iss.Sign(map[string]any{"sub": "svc-a", "aud": "conjur-swarm", "project": "blue"}, time.Minute)
		if _, err := e.jwtClient(tok, "").RetrieveSecret("apps/demo/db-password"); statusOf(err) != 401 {
			t.Fatalf("configured but not enabled: %v, want 401", err)
		}
		if err := e.admin().EnableAuthenticator("jwt", "swarm", true); err != nil {
			t.Fatalf("EnableAuthenticator: %v", err)
		}
		if _, err := e.jwtClient(tok, "").RetrieveSecret("apps/demo/db-password"); err != nil {
			t.Fatalf("enabled through the API: %v", err)
		}
		if err := e.admin().EnableAuthenticator("jwt", "swarm", false); err != nil {
			t.Fatalf("EnableAuthenticator false: %v", err)
		}
		if _, err := e.jwtClient(tok, "").RetrieveSecret("apps/demo/db-password"); statusOf(err) != 401 {
			t.Fatalf("disabled again: %v, want 401", err)
		}
	})
	t.Run("ok/authenticators-list", func(t *testing.T) {
		e, _ := jwtEnv(t, "sub")
		resp, body := e.do("GET", "/authenticators", "", nil)
		var got map[string][]string
		if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if !slices.Equal(got["enabled"], []string{"authn", "authn-jwt/swarm"}) || !slices.Contains(got["configured"], "authn-jwt/swarm") {
			t.Fatalf("authenticators %s", body)
		}
	})
	t.Run("fail/not-configured", func(t *testing.T) {
		e := newEnv(t)
		resp, _ := e.do("POST", "/authn-jwt/nope/dev/authenticate", "jwt=abc", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if resp.StatusCode != 401 {
			t.Fatalf("unconfigured service: %d, want 401", resp.StatusCode)
		}
	})
}

func TestParsePublicKeys(t *testing.T) {
	iss := testIssuer(t)
	keys, err := parsePublicKeys(iss.PublicKeysJSON())
	if err != nil || len(keys) != 1 {
		t.Fatalf("own keys: %v, %v", keys, err)
	}
	for _, bad := range []string{"", "{}", `{"type":"jwks","value":{"keys":[]}}`, `{"type":"pem"}`, `{"type":"jwks","value":{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}}`} {
		if _, err := parsePublicKeys(bad); err == nil {
			t.Errorf("parsePublicKeys(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "!!") {
			t.Errorf("error repeats input: %v", err)
		}
	}
}
