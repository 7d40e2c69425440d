package identity_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/identity"
)

// authnPolicy is the per-stack identity policy of docs/conjur.md, cut to
// one stack.
const authnPolicy = `
- !policy
  id: conjur/authn-jwt/swarm
  body:
  - !webservice
  - !variable public-keys
  - !variable issuer
  - !variable audience
  - !variable token-app-property
  - !variable identity-path
  - !group stacks
  - !permit
    role: !group stacks
    privilege: [ read, authenticate ]
    resource: !webservice
- !policy
  id: swarm/stacks
  body:
  - !host
    id: shop
    annotations:
      authn-jwt/swarm/stack: shop
- !grant
  role: !group conjur/authn-jwt/swarm/stacks
  member: !host swarm/stacks/shop
`

// TestSignedJWT_authenticatesAgainstTheDevServer logs in over HTTP to the
// dev-server's authn-jwt with a JWT this package signed: accepted when the
// manager's JWKS is in public-keys, refused (401) for a manager whose key
// is not.
func TestSignedJWT_authenticatesAgainstTheDevServer(t *testing.T) {
	srv, err := conjurdev.New(conjurdev.Options{Account: "dev", AdminAPIKey: "admin-key-for-tests", Authenticators: []string{"authn", "authn-jwt/swarm"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.LoadConjurPolicy(conjurdev.ModePatch, "root", []byte(authnPolicy)); err != nil {
		t.Fatal(err)
	}
	m1, err := identity.Open(filepath.Join(t.TempDir(), "m1"))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := identity.Open(filepath.Join(t.TempDir(), "m2"))
	if err != nil {
		t.Fatal(err)
	}
	m1JWKS, _ := json.Marshal(m1.JWKS())
	merged, err := identity.Merge([]identity.Input{{Name: "m1.json", Data: m1JWKS}})
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := json.Marshal(merged)
	for k, v := range map[string]string{
		"public-keys": string(pk), "issuer": "https://swarm.example", "audience": "conjur",
		"token-app-property": "sub", "identity-path": "swarm/stacks",
	} {
		if err := srv.SetSecret("conjur/authn-jwt/swarm/"+k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	login := func(store *identity.Store, c identity.Claims) int {
		sg, err := identity.NewSigner(store, identity.Options{Issuer: "https://swarm.example", Audience: "conjur"})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := sg.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(hs.URL+"/authn-jwt/swarm/dev/authenticate", "application/x-www-form-urlencoded",
			strings.NewReader(url.Values{"jwt": {tok.Reveal()}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name   string
		store  *identity.Store
		claims identity.Claims
		want   int
	}{
		{"ok/published-key", m1, identity.Claims{Subject: "shop", Stack: "shop", Service: "shop_web"}, http.StatusOK},
		{"fail/key-not-in-public-keys", m2, identity.Claims{Subject: "shop", Stack: "shop"}, http.StatusUnauthorized},
		{"fail/claim-pinned-by-annotation", m1, identity.Claims{Subject: "shop", Stack: "blog"}, http.StatusUnauthorized},
		{"fail/unknown-host", m1, identity.Claims{Subject: "blog", Stack: "shop"}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := login(tt.store, tt.claims); got != tt.want {
				t.Fatalf("authenticate = %d, want %d", got, tt.want)
			}
		})
	}
}
