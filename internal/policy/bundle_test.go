package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// bundlePolicy exercises bundles of every format and a shaped variable.
const bundlePolicy = `version: 1
within: [apps/]
rules:
  - name: db-config
    match:
      secret_labels: {com.docker.stack.namespace: "*"}
      secret: "*_db_config"
    bundle:
      format: json
      variables:
        user: "apps/{stack}/db/user"
        password: "apps/{stack}/db/password"
        aws_key: {variable: "apps/{stack}/aws", field: SecretAccessKey}
    allow:
      service_labels: {com.docker.stack.namespace: "{stack}"}
  - name: dsn
    match:
      secret_labels: {com.docker.stack.namespace: "*"}
      secret: "*_dsn"
    bundle:
      format: template
      variables:
        user: "apps/{stack}/db/user"
        password: {variable: "apps/{stack}/db/password", version: "{secret_label:conjur.version}"}
      template: "postgres://{{ .user }}:{{ urlquery .password }}@db:5432/app"
  - name: node-env
    match:
      secret: "env_*"
    bundle:
      format: dotenv
      variables:
        TOKEN: "apps/nodes/{node}/token"
        KEY: "{secret_label:conjur.variable}"
  - name: aws
    match:
      secret: aws_key
    variable: apps/shared/aws
    field: SecretAccessKey
    decode: base64
`

// bundleOKCases are good files with bundles (also fuzz seeds).
var bundleOKCases = []okCase{
	{"ok/bundle-policy", bundlePolicy, []string{"db-config", "dsn", "node-env", "aws"}, []string{"apps/"}},
	{"ok/yaml-bundle-block-template", "version: 1\nrules:\n  - name: a\n    match: {}\n    bundle:\n      format: template\n      variables: {a: apps/a, b: {variable: apps/b, decode: base64}}\n      template: |\n        A={{ .a | trim | json }}\n        B={{ base64 .b }}{{ if .a }} set{{ end }}\n", []string{"a"}, nil},
	{"ok/yaml-bundle", "version: 1\nrules:\n  - name: a\n    match: {}\n    bundle: {format: yaml, variables: {on: apps/x}}\n", []string{"a"}, nil},
}

// bundleProblemCases are broken bundle files and every problem (also fuzz
// seeds).
var bundleProblemCases = []problemCase{
	{"fail/bundle-and-variable", "version: 1\nrules:\n  - name: a\n    match: {}\n    variable: apps/x\n    bundle: {format: json, variables: {x: apps/x}}\n", []string{
		`6:5: rule "a" has both variable and bundle: a rule hands out one variable or a bundle of several; remove one`,
	}},
	{"fail/bundle-members", `version: 1
within: [apps/]
rules:
  - name: b
    match: {}
    bundle:
      format: jsn
      variables:
        1bad: apps/x
        ok: other/x
        m: {variable: apps/m, field: "", decode: hex, extra: 1}
`, []string{
		`7:15: bundle format "jsn" is not one of ` + strings.Join(formatNames(), ", ") + ` (did you mean "json"?)`,
		`9:9: bundle member name "1bad": use 1 to 64 letters, digits or '_', not starting with a digit (it must be a valid environment variable name)`,
		`10:13: variable "other/x" always lies outside within (apps/): every request would be denied`,
		`11:38: bundle member "m": field is empty: name a top-level member of the JSON value, or remove field`,
		`11:50: bundle member "m": decode "hex" is not supported: the only decode is "base64" (standard base64, padding optional)`,
		`11:55: unknown key "extra" in bundle member "m"; known keys: variable, version, field, decode`,
	}},
	{"fail/template-unknown-member", `version: 1
rules:
  - name: c
    match: {}
    bundle:
      format: template
      variables: {user: apps/u, password: apps/p}
      template: "postgres://{{ .usr }}:{{ urlquery .password }}@db"
`, []string{
		`8:32: bundle template names .usr, which is not a member of variables (members: password, user); did you mean .user?`,
	}},
	{"fail/template-does-not-parse-in-block", `version: 1
rules:
  - name: d
    match: {}
    bundle:
      format: template
      variables: {user: apps/u}
      template: |
        line one
          {{ .user }} {{ nope .user }}
`, []string{
		`10:9: bundle template does not parse: function "nope" not defined`,
	}},
	{"fail/template-constructs", `version: 1
rules:
  - name: f
    match: {}
    bundle:
      format: template
      variables: {user: apps/u}
      template: |
        ok {{ .user }}
        {{ range .user }}{{ end }} {{ .user.x }} {{ $.nobody }}
`, []string{
		`10:18: bundle template: range is not supported (every member is a string); name members directly`,
		`10:44: bundle template: .user is a string and has no field x`,
		`10:54: bundle template names .nobody, which is not a member of variables (members: user)`,
	}},
	{"fail/template-without-format-template", "version: 1\nrules:\n  - name: e\n    match: {}\n    bundle:\n      format: dotenv\n      variables: {user: apps/u}\n      template: \"x\"\n    field: x\n    version: 2\n", []string{
		`8:7: bundle template is used only with "format: template" (this bundle's format is dotenv): remove it or change the format`,
		`9:5: rule "e": field belongs to a single variable; in a bundle give it per member, e.g. NAME: {variable: "...", field: ...}`,
		`10:5: rule "e": version belongs to a single variable; in a bundle give it per member, e.g. NAME: {variable: "...", version: ...}`,
	}},
	{"fail/format-template-without-template", "version: 1\nrules:\n  - name: a\n    match: {}\n    bundle: {format: template, variables: {a: apps/a}}\n", []string{
		`5:13: rule "a" bundle has format template but no template: add "template: ..." (Go text/template over the member names)`,
	}},
	{"fail/empty-bundle", "version: 1\nrules:\n  - name: g\n    match: {}\n    bundle: {variables: {}}\n", []string{
		`5:13: rule "g" bundle has no format: add "format: json" (or ` + strings.Join(formatNames()[1:], ", ") + `)`,
		`5:25: bundle variables is empty: list at least one member as NAME: "variable id"`,
	}},
	{"fail/member-bad-placeholder-and-version", "version: 1\nrules:\n  - name: a\n    match: {}\n    bundle:\n      format: json\n      variables:\n        a: apps/{sekret}\n        b: {version: x}\n", []string{
		`8:17: variable: unknown placeholder {sekret} (did you mean {secret}?)...`,
		`9:12: bundle member "b": no variable: add "variable: ..."`,
		`9:22: version "x": outside placeholders a version holds only digits`,
	}},
	{"fail/shaped-variable", "version: 1\nrules:\n  - name: a\n    match: {}\n    variable: apps/a\n    field: [x]\n    decode: base32\n", []string{
		`6:12: field must be a string, got a list`,
		`7:13: decode "base32" is not supported: the only decode is "base64" (standard base64, padding optional)`,
	}},
}

func TestBundleMembersLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n  - name: a\n    match: {}\n    bundle:\n      format: json\n      variables:\n")
	for i := range MaxMembers + 1 {
		b.WriteString("        m" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ": apps/x\n")
	}
	_, err := Parse("f.yml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "8:9: bundle variables has 65 members, more than 64") {
		t.Fatalf("Parse: %v, want the member limit at 8:9", err)
	}
}

func TestBundleResolve(t *testing.T) {
	p := mustParse(t, bundlePolicy)
	stackReq := func(name, stack, serviceStack string) Request {
		return Request{SecretName: stack + "_" + name, SecretLabels: labels(stackLabel, stack),
			ServiceName: serviceStack + "_api", ServiceLabels: labels(stackLabel, serviceStack)}
	}
	withLabel := func(r Request, k, v string) Request {
		r.SecretLabels[k] = v
		return r
	}
	dbMembers := []Member{
		{Name: "aws_key", Variable: "apps/shop/aws", Field: "SecretAccessKey"},
		{Name: "password", Variable: "apps/shop/db/password"},
		{Name: "user", Variable: "apps/shop/db/user"},
	}
	for _, tc := range []struct {
		name       string
		req        Request
		allow      bool
		rule, cond string
		reason     string // substring
		bundle     *Bundle
		variable   string
		field      string
		decode     string
	}{
		{name: "ok/json-bundle-members-sorted", req: stackReq("db_config", "shop", "shop"), allow: true, rule: "db-config",
			reason: `rule "db-config" allows a json bundle of 3 variables`, bundle: &Bundle{Format: "json", Members: dbMembers}},
		{name: "fail/other-stack-still-lists-members", req: stackReq("db_config", "shop", "web"), rule: "db-config",
			cond: "allow.service_labels[com.docker.stack.namespace]", reason: `service label "com.docker.stack.namespace" is "web"`,
			bundle: &Bundle{Format: "json", Members: dbMembers}},
		{name: "ok/template-member-version", req: withLabel(stackReq("dsn", "shop", "shop"), "conjur.version", "7"), allow: true, rule: "dsn",
			bundle: &Bundle{Format: "template", Members: []Member{{Name: "password", Variable: "apps/shop/db/password", Version: 7}, {Name: "user", Variable: "apps/shop/db/user"}}}},
		{name: "fail/member-version-missing-names-member", req: stackReq("dsn", "shop", "shop"), rule: "dsn",
			cond: "bundle.variables[password].version {secret_label:conjur.version}", reason: `rule "dsn" denies: bundle.variables[password].version {secret_label:conjur.version}: bundle member "password": secret label "conjur.version" is missing`},
		{name: "fail/member-version-not-a-number", req: withLabel(stackReq("dsn", "shop", "shop"), "conjur.version", "latest"), rule: "dsn",
			cond: "bundle.variables[password].version", reason: `bundle member "password": "latest" is not a positive integer`},
		{name: "fail/stack-with-slash-stays-in-apps", req: stackReq("db_config", "../restricted", "../restricted"), rule: "db-config",
			cond: "bundle.variables[aws_key]", reason: `bundle member "aws_key": the resolved id "apps/../restricted/aws" has a ".." path segment`},
		{name: "ok/dotenv-node-member", req: Request{SecretName: "env_a", NodeID: "n1", SecretLabels: labels("conjur.variable", "apps/k")}, allow: true, rule: "node-env",
			bundle: &Bundle{Format: "dotenv", Members: []Member{{Name: "KEY", Variable: "apps/k"}, {Name: "TOKEN", Variable: "apps/nodes/n1/token"}}}},
		{name: "fail/service-side-slash-names-member", req: Request{SecretName: "env_a", NodeID: "n1/../../x", SecretLabels: labels("conjur.variable", "apps/k")}, rule: "node-env",
			cond: "bundle.variables[TOKEN] variable {node}", reason: `bundle member "TOKEN": {node} is "n1/../../x", which holds a /`},
		{name: "fail/member-outside-within", req: Request{SecretName: "env_a", NodeID: "n1", SecretLabels: labels("conjur.variable", "restricted/admin")}, rule: "node-env",
			cond: "bundle.variables[KEY].within", reason: `bundle member "KEY": the resolved id "restricted/admin" is not under apps/`},
		{name: "fail/member-label-missing", req: Request{SecretName: "env_a", NodeID: "n1"}, rule: "node-env",
			cond: "bundle.variables[KEY] variable {secret_label:conjur.variable}", reason: `bundle member "KEY": secret label "conjur.variable" is missing`},
		{name: "fail/member-hostile-label", req: Request{SecretName: "env_a", NodeID: "n1", SecretLabels: labels("conjur.variable", "apps/x\n,%")}, rule: "node-env",
			cond: "bundle.variables[KEY]", reason: `contains the control character U+000A`},
		{name: "ok/shaped-variable", req: Request{SecretName: "aws_key"}, allow: true, rule: "aws", variable: "apps/shared/aws", field: "SecretAccessKey", decode: "base64",
			reason: `rule "aws" allows variable "apps/shared/aws"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Resolve(tc.req)
			if d.Allow != tc.allow || d.Rule != tc.rule || d.Condition != tc.cond || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("got allow=%v rule=%q condition=%q reason=%q\nwant allow=%v rule=%q condition=%q reason containing %q",
					d.Allow, d.Rule, d.Condition, d.Reason, tc.allow, tc.rule, tc.cond, tc.reason)
			}
			if diff := cmp.Diff(tc.bundle, d.Bundle, cmpopts.IgnoreUnexported(Bundle{})); diff != "" {
				t.Errorf("bundle (-want +got):\n%s", diff)
			}
			if d.Variable != tc.variable || d.Field != tc.field || d.Decode != tc.decode {
				t.Errorf("variable=%q field=%q decode=%q, want %q %q %q", d.Variable, d.Field, d.Decode, tc.variable, tc.field, tc.decode)
			}
			checkDecision(t, p, tc.req, d)
		})
	}
}

func TestDecisionVariables(t *testing.T) {
	p := mustParse(t, bundlePolicy)
	d := p.Resolve(Request{SecretName: "shop_db_config", SecretLabels: labels(stackLabel, "shop"), ServiceLabels: labels(stackLabel, "shop")})
	if diff := cmp.Diff([]string{"apps/shop/aws", "apps/shop/db/password", "apps/shop/db/user"}, d.Variables()); diff != "" {
		t.Errorf("bundle Variables (-want +got):\n%s", diff)
	}
	d = p.Resolve(Request{SecretName: "aws_key"})
	if diff := cmp.Diff([]string{"apps/shared/aws"}, d.Variables()); diff != "" {
		t.Errorf("single Variables (-want +got):\n%s", diff)
	}
	if got := p.Resolve(Request{SecretName: "nothing"}).Variables(); got != nil {
		t.Errorf("no-match Variables = %v, want nil", got)
	}
}

// TestBundleTemplateProblemsBounded: a template full of mistakes reports
// the first maxTemplateProblems of them, each at its own line of the block.
func TestBundleTemplateProblemsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n  - name: a\n    match: {}\n    bundle:\n      format: template\n      variables: {user: apps/u}\n      template: |\n")
	for range 50 {
		b.WriteString("        {{ .nobody }}\n")
	}
	_, err := Parse("f.yml", []byte(b.String()))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != maxTemplateProblems {
		t.Fatalf("Parse: %d problems, want %d:\n%v", len(ps), maxTemplateProblems, err)
	}
	for i, p := range ps {
		if p.Line != 9+i || p.Col != 12 {
			t.Errorf("problem %d at %d:%d, want %d:12", i, p.Line, p.Col, 9+i)
		}
	}
}
