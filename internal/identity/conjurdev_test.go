package identity_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyberark/conjur-api-go/conjurapi"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/identity"
)

const (
	issuer   = "https://swarm.example.com"
	audience = "conjur"
	examples = "../../docs/examples"
)

// identityServer is the dev server with the demo and docs/conjur.md's
// per-stack identity policy loaded, public-keys set to the merged JWKS of
// the published stores.
func identityServer(t *testing.T, published ...*identity.Store) string {
	t.Helper()
	srv, err := conjurdev.New(conjurdev.Options{Account: "dev", AdminAPIKey: "admin-key-for-tests", Authenticators: []string{"authn", "authn-jwt/swarm"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.LoadDemo(examples); err != nil {
		t.Fatal(err)
	}
	policy, err := os.ReadFile(filepath.Join(examples, "conjur-identity-policy.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.LoadConjurPolicy(conjurdev.ModePost, "root", policy); err != nil {
		t.Fatalf("docs/examples/conjur-identity-policy.yml: %v", err)
	}
	var inputs []identity.Input
	for i, s := range published {
		b, _ := json.Marshal(s.JWKS())
		inputs = append(inputs, identity.Input{Name: "m" + string(rune('1'+i)) + ".json", Data: b})
	}
	merged, err := identity.Merge(inputs)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := json.Marshal(merged)
	for k, v := range map[string]string{
		"public-keys": string(pk), "issuer": issuer, "audience": audience,
		"token-app-property": "sub", "identity-path": "swarm/stacks",
	} {
		if err := srv.SetSecret("conjur/authn-jwt/swarm/"+k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs.URL
}

func signFor(t *testing.T, store *identity.Store, c identity.Claims) string {
	t.Helper()
	sg, err := identity.NewSigner(store, identity.Options{Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := sg.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

// TestSignedJWT_authenticatesAgainstTheDevServer logs in over HTTP to the
// dev-server's authn-jwt (Conjur 1.24's rules) with JWTs this package
// signed: accepted when the manager's JWKS is in public-keys, refused for a
// manager whose key is not, for a claim the host's annotation pins
// otherwise, and for an identity Conjur has no host for.
func TestSignedJWT_authenticatesAgainstTheDevServer(t *testing.T) {
	m1, m2 := openStore(t), openStore(t)
	base := identityServer(t, m1)
	login := func(store *identity.Store, c identity.Claims) int {
		resp, err := http.Post(base+"/authn-jwt/swarm/dev/authenticate", "application/x-www-form-urlencoded",
			strings.NewReader(url.Values{"jwt": {signFor(t, store, c)}}.Encode()))
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
		{"fail/claim-pinned-by-annotation", m1, identity.Claims{Subject: "shop", Stack: "demo"}, http.StatusUnauthorized},
		{"fail/unknown-host", m1, identity.Claims{Subject: "blog", Stack: "blog"}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := login(tt.store, tt.claims); got != tt.want {
				t.Fatalf("authenticate = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestSignedJWT_conjurAPIGoReadsOnlyTheStacksVariables: conjur-api-go's own
// NewClientFromJwt logs in with a signed JWT as host swarm/stacks/shop,
// which reads shop's variable and is refused demo's (Conjur's RBAC, the
// second wall behind the mapping).
func TestSignedJWT_conjurAPIGoReadsOnlyTheStacksVariables(t *testing.T) {
	m1 := openStore(t)
	base := identityServer(t, m1)
	c, err := conjurapi.NewClientFromJwt(conjurapi.Config{
		Account: "dev", ApplianceURL: base, CredentialStorage: conjurapi.CredentialStorageNone,
		Environment: conjurapi.EnvironmentOSS, HTTPTimeout: 10,
		AuthnType: "jwt", ServiceID: "swarm", JWTContent: signFor(t, m1, identity.Claims{Subject: "shop", Stack: "shop"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.GetHttpClient().CloseIdleConnections() })
	if v, err := c.RetrieveSecret("apps/shop/db-password"); err != nil || string(v) != "shop-db-password-0001" {
		t.Fatalf("shop's variable: %q, %v", v, err)
	}
	if _, err := c.RetrieveSecret("apps/demo/db-password"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("demo's variable as shop: %v, want 404 (Conjur hides what the host may not see)", err)
	}
}

func openStore(t *testing.T) *identity.Store {
	t.Helper()
	s, err := identity.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDocsShowTheTestedPolicy: docs/conjur.md's per-stack identity policy
// block is docs/examples/conjur-identity-policy.yml (its header aside), the
// file these tests load.
func TestDocsShowTheTestedPolicy(t *testing.T) {
	doc, err := os.ReadFile("../../docs/conjur.md")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(examples, "conjur-identity-policy.yml"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Per-stack identity\n")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/conjur.md has no yaml block under \"## Per-stack identity\"")
	}
	_, body, _ := strings.Cut(string(file), "\n\n")
	if block != body {
		t.Errorf("docs/conjur.md's per-stack identity policy differs from docs/examples/conjur-identity-policy.yml:\n--- doc\n%s--- file\n%s", block, body)
	}
}
