package driver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/identity"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

const perStackExample = "../../docs/examples/per-stack"

// perStackConjur is the dev server with the per-stack example (two stacks,
// each its own host) whose authn-jwt/swarm trusts a fresh manager key, and
// a Conjur client in the per-request identity mode signing with that key.
func perStackConjur(t *testing.T) *conjur.Client {
	t.Helper()
	dev, err := conjurdev.New(conjurdev.Options{Authenticators: []string{"authn", "authn-jwt/swarm"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.LoadDemo(perStackExample); err != nil {
		t.Fatal(err)
	}
	store, err := identity.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := identity.NewSigner(store, identity.Options{Issuer: "https://swarm.test"})
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(store.JWKS())
	keys, err := identity.Merge([]identity.Input{{Name: "m1", Data: jwks}})
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := json.Marshal(keys)
	for name, v := range map[string]string{"public-keys": string(pk), "issuer": "https://swarm.test"} {
		if err := dev.SetSecret("conjur/authn-jwt/swarm/"+name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := dev.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	c, err := conjur.New(conjur.Config{ApplianceURLs: []string{l.URL}, Account: dev.Account(), AllowHTTP: true,
		JWTServiceID: "swarm", FetchTimeout: 5 * time.Second, Signer: signer}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// stackResolver allows by the conjur.variable label, as the identity the
// service's stack: a mapping whose rule lets a stack name any variable.
func stackResolver() *fakeResolver {
	return &fakeResolver{fn: func(r policy.Request) policy.Decision {
		stack := r.ServiceLabels[stackLabel]
		return policy.Decision{Allow: true, Rule: "by-label", Variable: r.SecretLabels["conjur.variable"], Identity: stack,
			Reason: "rule by-label matched"}
	}}
}

func stackRequest(stack, task, variable string) pluginapi.Request {
	return pluginapi.Request{SecretName: stack + "_secret", SecretLabels: map[string]string{"conjur.variable": variable},
		ServiceName: stack + "_web", ServiceID: "svc-" + stack, ServiceLabels: map[string]string{stackLabel: stack},
		TaskID: task, NodeID: "node-1", TaskImage: "img"}
}

// The driver reads each stack's variables as that stack's Conjur host; a
// mapping that wrongly lets stack shop name blog's variable is refused by
// Conjur (FORBIDDEN), and prefetched variables are read as their own rule's
// identity.
func TestPerStackIdentity_driverReadsAsTheDecisionsIdentity(t *testing.T) {
	c := perStackConjur(t)
	core, logs := observer.New(zap.DebugLevel)
	d, err := New(Options{Resolver: stackResolver(), Conjur: c, Logger: zap.New(core), Prefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, stack, task, variable, want, code string
	}{
		{"ok/shop its own", "shop", "t1", "apps/shop/db-password", "shop-db-password-0001", ""},
		{"ok/shop its second", "shop", "t1", "apps/shop/api-key", "shop-api-key-0001", ""},
		{"ok/blog its own", "blog", "t2", "apps/blog/db-password", "blog-db-password-0001", ""},
		{"forbidden/shop reaching for blog's", "shop", "t3", "apps/blog/db-password", "", "FORBIDDEN"},
		{"ok/a later shop task, its first Get prefetching the second", "shop", "t4", "apps/shop/db-password", "shop-db-password-0001", ""},
		{"ok/the prefetched one", "shop", "t4", "apps/shop/api-key", "shop-api-key-0001", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := d.GetSecret(t.Context(), stackRequest(tc.stack, tc.task, tc.variable))
			if tc.code != "" {
				if !strings.Contains(resp.Err, tc.code) || !strings.Contains(resp.Err, tc.stack) {
					t.Fatalf("got %q, want %s naming identity %s", resp.Err, tc.code, tc.stack)
				}
				return
			}
			if resp.Err != "" || string(resp.Value) != tc.want {
				t.Fatalf("got %q, %q; want %q", resp.Value, resp.Err, tc.want)
			}
		})
	}
	prefetched := 0
	for _, e := range logs.FilterMessage("secret served").All() {
		if e.ContextMap()["prefetched"] == true {
			prefetched++
		}
	}
	if prefetched != 1 {
		t.Fatalf("%d answers were prefetched, want 1 (shop's second variable for task t4)", prefetched)
	}
	if st := c.Status(); st.Identities != 2 || st.CredentialSource != "per-request" {
		t.Fatalf("the client holds %d identities (%s), want shop and blog", st.Identities, st.CredentialSource)
	}
}

// A bundle's members are read together as the identity its rule chose: a
// bundle of shop's variables renders for shop; the same bundle asked for by
// blog (the rule lets any stack have it) is refused by Conjur for blog.
func TestPerStackIdentity_bundleReadsAsTheDecisionsIdentity(t *testing.T) {
	c := perStackConjur(t)
	mapping := filepath.Join(t.TempDir(), "mapping.yml")
	if err := os.WriteFile(mapping, []byte(`version: 1
within: [apps/]
identity: "{service_label:com.docker.stack.namespace}"
rules:
  - name: shop-env
    match:
      secret_labels: {conjur.bundle: shop-env}
    bundle:
      format: dotenv
      variables:
        DB_PASSWORD: apps/shop/db-password
        API_KEY: apps/shop/api-key
`), 0o600); err != nil {
		t.Fatal(err)
	}
	store := policy.OpenStore(mapping, zap.NewNop())
	d, err := New(Options{Resolver: store, Conjur: c, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	req := func(stack string) pluginapi.Request {
		r := stackRequest(stack, "t-"+stack, "")
		r.SecretLabels = map[string]string{"conjur.bundle": "shop-env"}
		return r
	}
	resp := d.GetSecret(t.Context(), req("shop"))
	if want := "API_KEY='shop-api-key-0001'\nDB_PASSWORD='shop-db-password-0001'\n"; resp.Err != "" || string(resp.Value) != want {
		t.Fatalf("shop's bundle: %q, %q; want %q", resp.Value, resp.Err, want)
	}
	resp = d.GetSecret(t.Context(), req("blog"))
	if !strings.Contains(resp.Err, "FORBIDDEN") || !strings.Contains(resp.Err, "identity blog") || len(resp.Value) != 0 {
		t.Fatalf("blog asking for shop's bundle: %q, %q; want FORBIDDEN for identity blog", resp.Value, resp.Err)
	}
}
