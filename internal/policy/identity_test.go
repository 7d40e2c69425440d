package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const identityPolicy = `version: 1
within: [apps/]
identity: "{service_label:com.docker.stack.namespace}"
rules:
  - name: shared
    match: {secret_labels: {conjur.shared: "*"}}
    variable: apps/shared/{secret_label:conjur.shared}
    identity: "shared/{service}"
  - name: by-tier
    match: {secret: 're:^(?P<tier>[a-z]+)_db$'}
    variable: apps/{match:tier}/db
    identity: "tiers/{match:tier}"
  - name: stack
    match: {secret_labels: {com.docker.stack.namespace: "*"}}
    variable: apps/{stack}/{secret_key}
    allow: {service_labels: {com.docker.stack.namespace: "{stack}"}}
`

func TestResolve_identity(t *testing.T) {
	p := mustParse(t, identityPolicy)
	stack := func(s string) map[string]string { return map[string]string{stackLabel: s} }
	tests := []struct {
		name      string
		req       Request
		allow     bool
		identity  string
		condition string
	}{
		{"allow/default-identity", Request{SecretName: "shop_api_key", SecretLabels: stack("shop"), ServiceName: "shop_web", ServiceLabels: stack("shop")}, true, "shop", ""},
		{"allow/rule-identity", Request{SecretName: "s", SecretLabels: map[string]string{"conjur.shared": "ca"}, ServiceName: "web"}, true, "shared/web", ""},
		{"allow/match-group", Request{SecretName: "gold_db", ServiceName: "web"}, true, "tiers/gold", ""},
		{"deny/default-identity-cannot-be-filled", Request{SecretName: "shop_api_key", SecretLabels: stack("shop"), ServiceName: "x"}, false, "", "identity {service_label:com.docker.stack.namespace}"},
		{"deny/service-side-value-with-slash", Request{SecretName: "s", SecretLabels: map[string]string{"conjur.shared": "ca"}, ServiceName: "a/../../admin"}, false, "", "identity {service}"},
		{"deny/resolved-identity-invalid", Request{SecretName: "s", SecretLabels: map[string]string{"conjur.shared": "ca"}, ServiceName: ".."}, false, "", "identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Resolve(tt.req)
			if d.Allow != tt.allow || d.Identity != tt.identity || d.Condition != tt.condition {
				t.Fatalf("Resolve = allow %v identity %q condition %q (%s), want %v %q %q", d.Allow, d.Identity, d.Condition, d.Reason, tt.allow, tt.identity, tt.condition)
			}
			if !tt.allow && !strings.Contains(d.Reason, "denies: identity") {
				t.Errorf("reason %q does not name the identity", d.Reason)
			}
		})
	}
}

func TestIdentities_listsEachRulesTemplate(t *testing.T) {
	p := mustParse(t, identityPolicy)
	want := []RuleIdentity{
		{Rule: "shared", Identity: "shared/{service}"},
		{Rule: "by-tier", Identity: "tiers/{match:tier}"},
		{Rule: "stack", Identity: "{service_label:com.docker.stack.namespace}", Default: true},
	}
	if diff := cmp.Diff(want, p.Identities()); diff != "" {
		t.Errorf("Identities (-want +got):\n%s", diff)
	}
	if got := p.WithoutIdentity(); got != nil {
		t.Errorf("WithoutIdentity = %v, want none", got)
	}
	plain := mustParse(t, "version: 1\nrules:\n  - name: a\n    match: {}\n    variable: apps/x\n  - name: b\n    match: {}\n    variable: apps/y\n    identity: b\n")
	if diff := cmp.Diff([]string{"a"}, plain.WithoutIdentity()); diff != "" {
		t.Errorf("WithoutIdentity (-want +got):\n%s", diff)
	}
	if Builtin().Identities() != nil || Builtin().Resolve(Request{SecretName: "s", SecretLabels: map[string]string{"conjur.variable": "v"}}).Identity != "" {
		t.Errorf("the built-in policy names an identity")
	}
}

func TestParse_identityProblemsArePlaced(t *testing.T) {
	rule := func(identity string) string {
		return "version: 1\nrules:\n  - name: a\n    match: {}\n    variable: apps/x\n    identity: " + identity + "\n"
	}
	tests := []struct {
		name, src, want string
	}{
		{"unknown-placeholder", rule(`"s/{stak}"`), `f.yml:6:18: rule "a" identity: unknown placeholder {stak} (did you mean {stack}?)`},
		{"undefined-group", rule(`"{match:x}"`), `f.yml:6:16: rule "a" identity: {match:x}: `},
		{"bad-literal", rule(`"a//b"`), `f.yml:6:15: rule "a" identity "a//b" can never be a valid host id: it has an empty path segment`},
		{"leading-slash", rule(`"/{service}"`), `can never be a valid host id: it starts with /`},
		{"control-char", rule(`"a\tb"`), `rule "a" identity "a\tb"`},
		{"not-a-string", rule(`[a]`), `identity must be a string`},
		{"default-with-match-group", "version: 1\nidentity: '{match:x}'\nrules:\n  - name: a\n    match: {}\n    variable: apps/x\n", `f.yml:2:12: the default identity cannot use {match:x}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yml", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want a problem containing %q", err, tt.want)
			}
		})
	}
}

// TestRecipePerStackIdentity checks the decisions docs/mapping.md claims for
// the per-stack identity recipe.
func TestRecipePerStackIdentity(t *testing.T) {
	p, err := ParseFile(docsDir + "/examples/mapping-recipes/per-stack-identity.yml")
	if err != nil {
		t.Fatal(err)
	}
	shop := Request{SecretName: "shop_db", SecretLabels: labels(stackLabel, "shop"), ServiceName: "shop_web", ServiceLabels: labels(stackLabel, "shop")}
	if d := p.Resolve(shop); !d.Allow || d.Variable != "apps/shop/db" || d.Identity != "shop" {
		t.Errorf("own stack: %+v, want allow apps/shop/db as shop", d)
	}
	shop.ServiceLabels = nil
	if d := p.Resolve(shop); d.Allow || d.Condition != "identity {service_label:com.docker.stack.namespace}" {
		t.Errorf("service not in a stack: %+v, want the identity to deny", d)
	}
}
