package policy

import (
	"path/filepath"
	"testing"
)

// docsDir is the repository's docs/ folder, relative to this package.
const docsDir = "../../docs"

// TestRecipes loads each recipe of docs/mapping.md and checks the decisions
// the document claims for it.
func TestRecipes(t *testing.T) {
	type claim struct {
		name     string
		req      Request
		allow    bool
		rule     string
		variable string
		version  int
		cond     string
	}
	stack := func(stack, key string) Request {
		return Request{SecretName: stack + "_" + key, SecretLabels: labels(stackLabel, stack),
			ServiceName: stack + "_api", ServiceLabels: labels(stackLabel, stack)}
	}
	withService := func(r Request, kv ...string) Request {
		r.ServiceLabels = labels(kv...)
		return r
	}
	withImage := func(r Request, image string) Request {
		r.Image = image
		return r
	}
	recipes := []struct {
		file   string
		claims []claim
	}{
		{"examples/mapping.yml", []claim{
			{"ok/label", withService(Request{SecretName: "db_password", SecretLabels: labels("conjur.variable", "apps/demo/db-password")}, stackLabel, "demo"), true, "by-label", "apps/demo/db-password", 0, ""},
			{"fail/label of another stack", withService(Request{SecretName: "db_password", SecretLabels: labels("conjur.variable", "apps/demo/db-password")}, stackLabel, "shop"), false, "by-label", "apps/demo/db-password", 0, "allow.service_labels[com.docker.stack.namespace]"},
			{"fail/label, not a stack's service", Request{SecretName: "db_password", SecretLabels: labels("conjur.variable", "apps/demo/db-password")}, false, "by-label", "apps/demo/db-password", 0, "allow.service_labels[com.docker.stack.namespace]"},
			{"fail/a stack's secret labelled into another stack (issue 11)", withService(Request{SecretName: "demo_db", SecretLabels: labels(stackLabel, "demo", "conjur.variable", "apps/shop/db-password")}, stackLabel, "demo"), false, "by-label", "apps/shop/db-password", 0, "allow.service_labels[com.docker.stack.namespace]"},
			{"ok/stack", stack("demo", "api_token"), true, "stack-secrets", "apps/demo/api_token", 0, ""},
			{"fail/label-outside-apps", Request{SecretName: "x", SecretLabels: labels("conjur.variable", "prod/db/password")}, false, "", "", 0, "match"},
			{"fail/other-stack", withService(stack("demo", "api_token"), stackLabel, "other"), false, "stack-secrets", "apps/demo/api_token", 0, "allow.service_labels[com.docker.stack.namespace]"},
		}},
		{"examples/mapping-recipes/label-driven.yml", []claim{
			{"ok/latest", withService(Request{SecretName: "db_password", SecretLabels: labels("conjur.variable", "apps/web/db-password")}, stackLabel, "web"), true, "by-label", "apps/web/db-password", 0, ""},
			{"ok/pinned", withService(Request{SecretName: "db_password_v3", SecretLabels: labels("conjur.variable", "apps/web/db-password", "conjur.version", "3")}, stackLabel, "web"), true, "pinned-version", "apps/web/db-password", 3, ""},
			{"fail/other-stack", withService(Request{SecretName: "db_password", SecretLabels: labels("conjur.variable", "apps/web/db-password")}, stackLabel, "shop"), false, "by-label", "apps/web/db-password", 0, "allow.service_labels[com.docker.stack.namespace]"},
			{"fail/bad-version", withService(Request{SecretName: "x", SecretLabels: labels("conjur.variable", "apps/web/db-password", "conjur.version", "latest")}, stackLabel, "web"), false, "pinned-version", "apps/web/db-password", 0, "version"},
			{"fail/outside-within", Request{SecretName: "x", SecretLabels: labels("conjur.variable", "prod/db/password")}, false, "", "", 0, "match"},
			{"fail/no-label", Request{SecretName: "x"}, false, "", "", 0, "match"},
		}},
		{"examples/mapping-recipes/per-stack.yml", []claim{
			{"ok/own-stack", stack("web", "db_password"), true, "stack-secrets", "apps/web/db_password", 0, ""},
			{"fail/other-stack", withService(stack("web", "db_password"), stackLabel, "billing"), false, "stack-secrets", "apps/web/db_password", 0, "allow.service_labels[com.docker.stack.namespace]"},
			{"fail/not-a-stack", withService(stack("web", "db_password")), false, "stack-secrets", "apps/web/db_password", 0, "allow.service_labels[com.docker.stack.namespace]"},
			{"fail/external-secret", Request{SecretName: "db_password"}, false, "", "", 0, "match"},
		}},
		{"examples/mapping-recipes/per-environment.yml", []claim{
			{"ok/prod", withService(stack("web", "db_password"), stackLabel, "web", "env", "prod"), true, "per-environment", "apps/prod/web/db_password", 0, ""},
			{"ok/staging", withService(stack("web", "db_password"), stackLabel, "web", "env", "staging"), true, "per-environment", "apps/staging/web/db_password", 0, ""},
			{"fail/unlisted-env", withService(stack("web", "db_password"), stackLabel, "web", "env", "dev"), false, "", "", 0, "match"},
			{"fail/env-with-slash", withService(stack("web", "db_password"), stackLabel, "web", "env", "prod/../staging"), false, "", "", 0, "match"},
			{"fail/other-stack", withService(stack("web", "db_password"), stackLabel, "billing", "env", "prod"), false, "per-environment", "apps/prod/web/db_password", 0, "allow.service_labels[com.docker.stack.namespace]"},
		}},
		{"examples/mapping-recipes/pinning-images.yml", []claim{
			{"ok/pinned-image", withImage(stack("payments", "key_signing"), "registry.example.com/payments/api:1.4@sha256:0123abcd"), true, "payments-keys", "apps/payments/key_signing", 0, ""},
			{"fail/tag-only", withImage(stack("payments", "key_signing"), "registry.example.com/payments/api:1.4"), false, "payments-keys", "apps/payments/key_signing", 0, "allow.image"},
			{"fail/other-registry", withImage(stack("payments", "key_signing"), "docker.io/evil/payments/api@sha256:0123abcd"), false, "payments-keys", "apps/payments/key_signing", 0, "allow.image"},
			{"ok/other-secret-any-image", withImage(stack("payments", "db_password"), "docker.io/library/alpine:3"), true, "stack-secrets", "apps/payments/db_password", 0, ""},
		}},
	}
	for _, rc := range recipes {
		t.Run(rc.file, func(t *testing.T) {
			p := loadRecipe(t, rc.file)
			for _, c := range rc.claims {
				t.Run(c.name, func(t *testing.T) {
					d := p.Resolve(c.req)
					if d.Allow != c.allow || d.Rule != c.rule || d.Variable != c.variable || d.Version != c.version || d.Condition != c.cond {
						t.Errorf("got allow=%v rule=%q variable=%q version=%d condition=%q (%s)\nwant allow=%v rule=%q variable=%q version=%d condition=%q",
							d.Allow, d.Rule, d.Variable, d.Version, d.Condition, d.Reason, c.allow, c.rule, c.variable, c.version, c.cond)
					}
				})
			}
		})
	}
}

// loadRecipe parses a recipe file under docs/.
func loadRecipe(t *testing.T, file string) *Policy {
	t.Helper()
	p, err := ParseFile(filepath.Join(docsDir, file))
	if err != nil {
		t.Fatalf("recipe does not parse:\n%v", err)
	}
	return p
}
