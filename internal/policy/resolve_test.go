package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testPolicy exercises every kind of condition and placeholder.
const testPolicy = `version: 1
account: myorg
within: [apps/, shared/]
rules:
  - name: by-label
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "{secret_label:conjur.variable}"
    version: "{secret_label:conjur.version}"
  - name: latest-by-label
    match:
      secret_labels: {conjur.latest: "*"}
    variable: "{secret_label:conjur.latest}"
    reuse: true
  - name: per-env
    match:
      secret: "env_*"
      service_labels: {env: [prod, staging]}
    variable: "apps/{service_label:env}/{secret_key}"
  - name: by-service
    match:
      secret: "svc_*"
    variable: "apps/services/{service}/{node}"
  - name: regex
    match:
      secret: "re:team-(?P<team>[a-z]+)-(?P<key>[a-z0-9/.]+)"
    variable: "apps/{match:team}/{match:key}"
  - name: service-group
    match:
      service: "re:(?P<svc>.+)-worker"
      secret: "worker_token"
    variable: "shared/{match:svc}/token"
  - name: stack-secrets
    match:
      secret_labels: {com.docker.stack.namespace: "*"}
    variable: "apps/{stack}/{secret_key}"
    allow:
      service_labels: {com.docker.stack.namespace: "{stack}"}
      image: ["registry.example.com/*", "sha256:*"]
  - name: image-tag
    match:
      secret: "img_*"
    variable: "apps/images/{image}"
  - name: fallback-denied
    match:
      secret: "never_*"
    variable: "apps/x/{secret}"
    allow:
      node: "node-a"
  - name: fallback-allowed
    match:
      secret: "never_*"
    variable: "apps/y/{secret}"
`

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse("test.yml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

type matchingCase struct {
	name string
	req  Request
	want Decision
}

// matchingCases are the outcomes testPolicy promises (also fuzz seeds).
func matchingCases() []matchingCase {
	stackReq := Request{
		SecretName:    "web_db_password",
		SecretLabels:  labels("com.docker.stack.namespace", "web"),
		ServiceName:   "web_api",
		ServiceLabels: labels("com.docker.stack.namespace", "web"),
		Image:         "registry.example.com/web/api:1.2",
		NodeID:        "n1",
	}
	return []matchingCase{
		{
			name: "ok/by-label-first-rule-wins",
			req:  Request{SecretName: "db", SecretLabels: labels("conjur.variable", "apps/db/password", "conjur.version", "3", "com.docker.stack.namespace", "web")},
			want: Decision{Allow: true, Rule: "by-label", Account: "myorg", Variable: "apps/db/password", Version: 3, DoNotReuse: true,
				Reason: `rule "by-label" allows variable "apps/db/password"`},
		},
		{
			name: "ok/reuse-true-clears-do-not-reuse",
			req:  Request{SecretName: "db", SecretLabels: labels("conjur.latest", "shared/db/password")},
			want: Decision{Allow: true, Rule: "latest-by-label", Account: "myorg", Variable: "shared/db/password",
				Reason: `rule "latest-by-label" allows variable "shared/db/password"`},
		},
		{
			name: "ok/stack-secret-with-allow",
			req:  stackReq,
			want: Decision{Allow: true, Rule: "stack-secrets", Account: "myorg", Variable: "apps/web/db_password", DoNotReuse: true,
				Reason: `rule "stack-secrets" allows variable "apps/web/db_password" (allow.service_labels[com.docker.stack.namespace], allow.image held)`},
		},
		{
			name: "ok/per-env-from-service-label",
			req:  Request{SecretName: "env_db", ServiceName: "api", ServiceLabels: labels("env", "prod")},
			want: Decision{Allow: true, Rule: "per-env", Account: "myorg", Variable: "apps/prod/env_db", DoNotReuse: true,
				Reason: `rule "per-env" allows variable "apps/prod/env_db"`},
		},
		{
			name: "ok/re-named-groups-expand",
			req:  Request{SecretName: "team-billing-db/password"},
			want: Decision{Allow: true, Rule: "regex", Account: "myorg", Variable: "apps/billing/db/password", DoNotReuse: true,
				Reason: `rule "regex" allows variable "apps/billing/db/password"`},
		},
		{
			name: "ok/service-side-group-one-segment",
			req:  Request{SecretName: "worker_token", ServiceName: "billing-worker"},
			want: Decision{Allow: true, Rule: "service-group", Account: "myorg", Variable: "shared/billing/token", DoNotReuse: true,
				Reason: `rule "service-group" allows variable "shared/billing/token"`},
		},
		{
			name: "ok/service-and-node-placeholders",
			req:  Request{SecretName: "svc_x", ServiceName: "api", NodeID: "n7"},
			want: Decision{Allow: true, Rule: "by-service", Account: "myorg", Variable: "apps/services/api/n7", DoNotReuse: true,
				Reason: `rule "by-service" allows variable "apps/services/api/n7"`},
		},
		{
			name: "fail/no-rule-matches",
			req:  Request{SecretName: "other"},
			want: Decision{DoNotReuse: true, Condition: "match",
				Reason: `no rule matched secret "other" (by-label: match.secret_labels[conjur.variable] is missing; ` +
					`latest-by-label: match.secret_labels[conjur.latest] is missing; per-env: match.secret is "other", want "env_*"; ` +
					`by-service: match.secret is "other", want "svc_*"; ` +
					`regex: match.secret is "other", want "re:team-(?P<team>[a-z]+)-(?P<key>[a-z0-9/.]+)"; service-group: match.service is missing; ` +
					`stack-secrets: match.secret_labels[com.docker.stack.namespace] is missing; image-tag: match.secret is "other", want "img_*"; 2 more); ` +
					`add a rule or fix the secret's labels`},
		},
		{
			name: "fail/match-list-excludes-other-env",
			req:  Request{SecretName: "env_db", ServiceLabels: labels("env", "dev")},
			want: Decision{DoNotReuse: true, Condition: "match"},
		},
		{
			name: "fail/allow-fails-without-fall-through",
			req:  Request{SecretName: "never_x", NodeID: "node-b"},
			want: Decision{Rule: "fallback-denied", Account: "myorg", Variable: "apps/x/never_x", DoNotReuse: true, Condition: "allow.node",
				Reason: `rule "fallback-denied" denies: allow.node: node is "node-b", want "node-a"`},
		},
		{
			name: "fail/allow-stack-label-of-other-stack",
			req: func() Request {
				r := stackReq
				r.ServiceLabels = labels("com.docker.stack.namespace", "evil")
				return r
			}(),
			want: Decision{Rule: "stack-secrets", Account: "myorg", Variable: "apps/web/db_password", DoNotReuse: true,
				Condition: "allow.service_labels[com.docker.stack.namespace]",
				Reason:    `rule "stack-secrets" denies: allow.service_labels[com.docker.stack.namespace]: service label "com.docker.stack.namespace" is "evil", want "web"`},
		},
		{
			name: "fail/allow-service-label-missing",
			req: func() Request {
				r := stackReq
				r.ServiceLabels = nil
				return r
			}(),
			want: Decision{Rule: "stack-secrets", Account: "myorg", Variable: "apps/web/db_password", DoNotReuse: true,
				Condition: "allow.service_labels[com.docker.stack.namespace]",
				Reason:    `rule "stack-secrets" denies: allow.service_labels[com.docker.stack.namespace]: service label "com.docker.stack.namespace" is missing`},
		},
		{
			name: "fail/allow-placeholder-value-is-literal-not-glob",
			req: Request{SecretName: "*_db", SecretLabels: labels("com.docker.stack.namespace", "*"),
				ServiceLabels: labels("com.docker.stack.namespace", "web"), Image: "sha256:abc"},
			want: Decision{Rule: "stack-secrets", Account: "myorg", DoNotReuse: true, Condition: "variable",
				Reason: `rule "stack-secrets" denies: variable: the resolved id "apps/*/db" contains '*' (allowed: A-Z a-z 0-9 . _ @ : + = - and /)`},
		},
		{
			name: "fail/allow-image-not-pinned",
			req: func() Request {
				r := stackReq
				r.Image = "docker.io/library/alpine:3"
				return r
			}(),
			want: Decision{Rule: "stack-secrets", Account: "myorg", Variable: "apps/web/db_password", DoNotReuse: true, Condition: "allow.image",
				Reason: `rule "stack-secrets" denies: allow.image: image is "docker.io/library/alpine:3", want one of "registry.example.com/*", "sha256:*"`},
		},
		{
			name: "fail/version-label-missing",
			req:  Request{SecretName: "db", SecretLabels: labels("conjur.variable", "apps/db/password")},
			want: Decision{Rule: "by-label", Account: "myorg", Variable: "apps/db/password", DoNotReuse: true, Condition: "version {secret_label:conjur.version}",
				Reason: `rule "by-label" denies: version {secret_label:conjur.version}: secret label "conjur.version" is missing`},
		},
		{
			name: "fail/version-zero",
			req:  Request{SecretName: "db", SecretLabels: labels("conjur.variable", "apps/db/password", "conjur.version", "0")},
			want: Decision{Rule: "by-label", Account: "myorg", Variable: "apps/db/password", DoNotReuse: true, Condition: "version",
				Reason: `rule "by-label" denies: version: "0" is not a positive integer (at most 9 digits)`},
		},
		{
			name: "fail/version-not-a-number",
			req:  Request{SecretName: "db", SecretLabels: labels("conjur.variable", "apps/db/password", "conjur.version", "-1")},
			want: Decision{Rule: "by-label", Account: "myorg", Variable: "apps/db/password", DoNotReuse: true, Condition: "version",
				Reason: `rule "by-label" denies: version: "-1" is not a positive integer (at most 9 digits)`},
		},
		{
			name: "fail/secret-key-without-stack-prefix",
			req: Request{SecretName: "db_password", SecretLabels: labels("com.docker.stack.namespace", "web"),
				ServiceLabels: labels("com.docker.stack.namespace", "web"), Image: "sha256:abc"},
			want: Decision{Rule: "stack-secrets", Account: "myorg", DoNotReuse: true, Condition: "variable {secret_key}",
				Reason: `rule "stack-secrets" denies: variable {secret_key}: secret name "db_password" does not start with its stack's prefix "web_"`},
		},
	}
}

func TestResolveMatching(t *testing.T) {
	p := mustParse(t, testPolicy)
	for _, tc := range matchingCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := p.Resolve(tc.req)
			want := tc.want
			if got.Rule != "" {
				want.Mapping = p.Hash() // every decision of a rule names its policy
			}
			if want.Reason == "" {
				want.Reason = got.Reason // not asserted for this case
				if got.Reason == "" {
					t.Error("empty Reason")
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Resolve (-want +got):\n%s", diff)
			}
		})
	}
}

// TestResolveHostile feeds hostile values through every placeholder
// family. Each must be denied, naming the rule and a condition, with no
// variable in the decision.
type hostileCase struct {
	name      string
	req       Request
	rule      string
	condition string
	reason    string // substring
}

// hostileCases are requests with hostile values and how testPolicy denies
// them (also fuzz seeds).
func hostileCases() []hostileCase {
	long := strings.Repeat("a", 10000)
	byLabel := func(v string) Request {
		return Request{SecretName: "x", SecretLabels: labels("conjur.latest", v)}
	}
	stack := func(stack, name string) Request {
		return Request{SecretName: name, SecretLabels: labels("com.docker.stack.namespace", stack),
			ServiceLabels: labels("com.docker.stack.namespace", stack), Image: "sha256:abc"}
	}
	env := func(v string) Request {
		return Request{SecretName: "env_x", ServiceLabels: labels("env", v)}
	}
	return []hostileCase{
		{"fail/label-dot-dot-escapes-branch", byLabel("apps/../etc/passwd"), "latest-by-label", "variable", `".." path segment`},
		{"fail/label-dot-segment", byLabel("apps/./x"), "latest-by-label", "variable", `"." path segment`},
		{"fail/label-empty-segment", byLabel("apps//x"), "latest-by-label", "variable", "empty path segment"},
		{"fail/label-trailing-slash", byLabel("apps/x/"), "latest-by-label", "variable", "empty path segment"},
		{"fail/label-leading-slash", byLabel("/apps/x"), "latest-by-label", "variable", "starts with /"},
		{"fail/label-branch-itself", byLabel("apps/"), "latest-by-label", "variable", "empty path segment"},
		{"fail/label-outside-within", byLabel("secret/x"), "latest-by-label", "within", "is not under apps/, shared/"},
		{"fail/label-prefix-lookalike-branch", byLabel("apps-evil/x"), "latest-by-label", "within", "is not under"},
		{"fail/label-percent-escape", byLabel("apps/%2e%2e/x"), "latest-by-label", "variable", `contains '%'`},
		{"fail/label-percent-slash", byLabel("apps/a%2Fb"), "latest-by-label", "variable", `contains '%'`},
		{"fail/label-comma", byLabel("apps/a,shared/b"), "latest-by-label", "variable", `contains ','`},
		{"fail/label-question-mark", byLabel("apps/a?version=1"), "latest-by-label", "variable", `contains '?'`},
		{"fail/label-hash", byLabel("apps/a#b"), "latest-by-label", "variable", `contains '#'`},
		{"fail/label-backslash", byLabel(`apps\..\x`), "latest-by-label", "variable", `contains '\\'`},
		{"fail/label-newline", byLabel("apps/a\nb"), "latest-by-label", "variable", "control character U+000A"},
		{"fail/label-nul", byLabel("apps/a\x00b"), "latest-by-label", "variable", "control character U+0000"},
		{"fail/label-del", byLabel("apps/a\x7fb"), "latest-by-label", "variable", "control character U+007F"},
		{"fail/label-space", byLabel("apps/a b"), "latest-by-label", "variable", "whitespace (U+0020)"},
		{"fail/label-tab", byLabel("apps/a\tb"), "latest-by-label", "variable", "control character U+0009"},
		{"fail/label-no-break-space", byLabel("apps/a\u00a0b"), "latest-by-label", "variable", "U+00A0"},
		{"fail/label-division-slash", byLabel("apps/a\u2215..\u2215x"), "latest-by-label", "variable", "non-ASCII character U+2215"},
		{"fail/label-fullwidth-solidus", byLabel("apps/a\uff0fb"), "latest-by-label", "variable", "non-ASCII character U+FF0F"},
		{"fail/label-fullwidth-dots", byLabel("apps/\uff0e\uff0e/x"), "latest-by-label", "variable", "non-ASCII character U+FF0E"},
		{"fail/label-invalid-utf8", byLabel("apps/\xff"), "latest-by-label", "variable {secret_label:conjur.latest}", "not valid UTF-8"},
		{"fail/label-very-long", byLabel("apps/" + long), "latest-by-label", "variable {secret_label:conjur.latest}", "more than 4096"},
		{"fail/label-longer-than-an-id", byLabel("apps/" + long[:600]), "latest-by-label", "variable {secret_label:conjur.latest}", "would exceed 512 bytes"},
		{"fail/allow-placeholder-very-long", Request{SecretName: long + "_x", SecretLabels: labels("com.docker.stack.namespace", long), ServiceLabels: labels("com.docker.stack.namespace", long)}, "stack-secrets", "variable {stack}", "more than 4096"},
		{"fail/label-empty", byLabel(""), "latest-by-label", "variable {secret_label:conjur.latest}", `secret label "conjur.latest" is empty`},
		{"fail/stack-with-slash-dot-dot", stack("../../shared", "../../shared_x"), "stack-secrets", "variable", `".." path segment`},
		{"fail/service-label-slash", env("prod/../../shared"), "", "match", "no rule matched"},
		{"fail/service-name-slash", Request{SecretName: "svc_x", ServiceName: "a/b", NodeID: "n"}, "by-service", "variable {service}", "single path segment"},
		{"fail/service-name-dot-dot", Request{SecretName: "svc_x", ServiceName: "..", NodeID: "n"}, "by-service", "variable", `".." path segment`},
		{"fail/node-slash", Request{SecretName: "svc_x", ServiceName: "a", NodeID: "../x"}, "by-service", "variable {node}", "single path segment"},
		{"fail/node-missing", Request{SecretName: "svc_x", ServiceName: "a"}, "by-service", "variable {node}", "no node id"},
		{"fail/service-missing", Request{SecretName: "svc_x", NodeID: "n"}, "by-service", "variable {service}", "no service name"},
		{"fail/image-with-slash", Request{SecretName: "img_x", Image: "registry.example.com/x:1"}, "image-tag", "variable {image}", "single path segment"},
		{"fail/service-group-slash", Request{SecretName: "worker_token", ServiceName: "a/../b-worker"}, "service-group", "variable {match:svc}", "single path segment"},
		{"fail/service-label-division-slash", Request{SecretName: "svc_x", ServiceName: "a\u2215b", NodeID: "n"}, "by-service", "variable", "U+2215"},
	}
}

func TestResolveHostile(t *testing.T) {
	p := mustParse(t, testPolicy)
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Resolve(tc.req)
			if d.Allow {
				t.Fatalf("allowed %q, want deny", d.Variable)
			}
			if d.Rule != tc.rule || d.Condition != tc.condition {
				t.Errorf("rule %q condition %q, want rule %q condition %q (reason %s)", d.Rule, d.Condition, tc.rule, tc.condition, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", d.Reason, tc.reason)
			}
			if tc.rule != "" && !strings.Contains(d.Reason, `rule "`+tc.rule+`"`) {
				t.Errorf("reason %q does not name rule %q", d.Reason, tc.rule)
			}
			if d.Condition != "within" && d.Variable != "" {
				t.Errorf("Variable %q set on a deny before the id was known to be safe", d.Variable)
			}
			if strings.ContainsAny(d.Reason, "\n\r\x00") || len(d.Reason) > 1000 {
				t.Errorf("reason is not one bounded line: %q", d.Reason)
			}
		})
	}
}

func TestBuiltin(t *testing.T) {
	p := Builtin()
	if p.Hash() != "builtin" || len(p.Rules()) != 1 || p.Rules()[0] != "by-label" {
		t.Fatalf("Builtin: hash %q rules %v", p.Hash(), p.Rules())
	}
	tests := []struct {
		name  string
		req   Request
		allow bool
		want  string
	}{
		{"ok/label-names-variable", Request{SecretName: "db", SecretLabels: labels("conjur.variable", "prod/db/password")}, true, "prod/db/password"},
		{"fail/no-label", Request{SecretName: "db"}, false, ""},
		{"fail/dot-dot", Request{SecretName: "db", SecretLabels: labels("conjur.variable", "a/../b")}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Resolve(tc.req)
			if d.Allow != tc.allow || d.Variable != tc.want || !d.DoNotReuse {
				t.Errorf("got %+v, want allow=%v variable=%q DoNotReuse", d, tc.allow, tc.want)
			}
		})
	}
}

// TestMatchFailureShowsValueAndPattern: a failed match condition names the
// request's value and the patterns it was held to, escaped and bounded, as
// a failed allow condition does.
func TestMatchFailureShowsValueAndPattern(t *testing.T) {
	const doc = `version: 1
rules:
  - name: envs
    match:
      service_labels: {env: [prod, staging]}
    variable: "apps/{secret}"
  - name: many
    match:
      image: [a/*, b/*, c/*, d/*, e/*, f/*]
    variable: "apps/{secret}"
`
	p := mustParse(t, doc)
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{
			name: "fail/list shows every pattern",
			req:  Request{SecretName: "db", ServiceLabels: labels("env", "dev"), Image: "z/app"},
			want: `envs: match.service_labels[env] is "dev", want one of "prod", "staging"`,
		},
		{
			name: "fail/long list is cut",
			req:  Request{SecretName: "db", Image: "z/app"},
			want: `many: match.image is "z/app", want one of "a/*", "b/*", "c/*", "d/*", and 2 more`,
		},
		{
			name: "fail/control characters are escaped",
			req:  Request{SecretName: "db", ServiceLabels: labels("env", "dev\nprod\x1b[2J")},
			want: `match.service_labels[env] is "dev\nprod\x1b[2J", want one of`,
		},
		{
			name: "fail/long value is bounded",
			req:  Request{SecretName: "db", ServiceLabels: labels("env", long)},
			want: `is "` + long[:80] + `"… (300 bytes), want one of "prod", "staging"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Resolve(tt.req)
			if got.Allow || !strings.Contains(got.Reason, tt.want) {
				t.Errorf("Resolve: allow %t, reason\n%s\nwant it to contain\n%s", got.Allow, got.Reason, tt.want)
			}
			if strings.ContainsAny(got.Reason, "\n\x1b") || strings.Contains(got.Reason, long) {
				t.Errorf("reason holds a raw control character or the whole long value: %q", got.Reason)
			}
		})
	}
}
