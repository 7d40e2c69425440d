package policy

import (
	"strings"
	"testing"
)

// TestWarnsWhenTheSecretChoosesTheVariable: a rule that takes its variable
// from the secret and has no service-side allow lets anyone who can create
// a swarm secret choose the variable. It is valid, with a warning.
func TestWarnsWhenTheSecretChoosesTheVariable(t *testing.T) {
	tests := []struct {
		name, rule string
		want       string // "" = no warning
	}{
		{name: "warn/label, no allow", rule: `
    match: {secret_labels: {conjur.variable: "*"}}
    variable: "{secret_label:conjur.variable}"`, want: `6:15: warning: rule "r" takes the variable from the secret ({secret_label:conjur.variable})`},
		{name: "warn/secret name", rule: `
    match: {secret: "*"}
    variable: "apps/{secret}"`, want: `({secret})`},
		{name: "warn/stack and key, allow on the secret only", rule: `
    match: {secret_labels: {com.docker.stack.namespace: "*"}}
    variable: "apps/{stack}/{secret_key}"
    allow: {secret_labels: {tier: gold}}`, want: `({stack}, {secret_key})`},
		{name: "warn/a group captured from the secret", rule: `
    match: {secret: "re:(?P<app>[a-z]+)_db"}
    variable: "apps/{match:app}/db"`, want: `({match:app})`},
		{name: "warn/bundle members", rule: `
    match: {secret_labels: {conjur.config: "*"}}
    bundle:
      format: json
      variables:
        user: "apps/{secret_label:conjur.config}/user"`, want: `({secret_label:conjur.config})`},
		{name: "ok/stack tied to the service's stack", rule: `
    match: {secret_labels: {com.docker.stack.namespace: "*"}}
    variable: "apps/{stack}/{secret_key}"
    allow: {service_labels: {com.docker.stack.namespace: "{stack}"}}`},
		{name: "ok/pinned to an image", rule: `
    match: {secret_labels: {conjur.variable: "*"}}
    variable: "{secret_label:conjur.variable}"
    allow: {image: ["registry.example.com/*"]}`},
		{name: "ok/fixed variable", rule: `
    match: {secret: "db"}
    variable: "apps/db/password"`},
		{name: "ok/only service-side values", rule: `
    match: {secret: "db"}
    variable: "apps/{service_label:team}/db"`},
		{name: "ok/a group captured from the service", rule: `
    match: {secret: "db", service: "re:(?P<app>[a-z]+)-api"}
    variable: "apps/{match:app}/db"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("m.yml", []byte("version: 1\nwithin: [apps/]\nrules:\n  - name: r"+tc.rule+"\n"))
			if err != nil {
				t.Fatalf("a warning must not make the file invalid: %v", err)
			}
			got := p.Warnings().Strings()
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("warnings %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.Contains(got[0], "m.yml:")):
				t.Errorf("warnings %q, want one holding %q", got, tc.want)
			}
		})
	}
}

func TestBuiltinPolicyWarnsAndSaysHowToSilenceIt(t *testing.T) {
	got := Builtin().Warnings().Strings()
	if len(got) != 1 || !strings.Contains(got[0], "warning: the built-in policy") ||
		!strings.Contains(got[0], "set a mapping file (CONJUR_SWARM_MAPPING_FILE) with within and allow") {
		t.Errorf("built-in policy warnings %q", got)
	}
}

// TestReuseWithServiceSideConditionsIsRefused: with reuse: true Swarm hands
// the value fetched for one task to later tasks of other services on the
// node whatever the plugin answers for them, so a rule that depends on the
// task cannot be reusable.
func TestReuseWithServiceSideConditionsIsRefused(t *testing.T) {
	tests := []struct {
		name, rule string
		want       string // "" = valid
	}{
		{name: "fail/allow on service labels", rule: `
    match: {secret_labels: {team.variable: "*"}}
    variable: "apps/{secret_label:team.variable}"
    allow: {service_labels: {team: a}}
    reuse: true`, want: `8:12: rule "r" has reuse: true but depends on the task (allow.service_labels[team])`},
		{name: "fail/match on the image", rule: `
    match: {secret: "db", image: "registry.example.com/*"}
    variable: "apps/db"
    reuse: true`, want: `(match.image)`},
		{name: "fail/match on the service name", rule: `
    match: {secret: "db", service: "web"}
    variable: "apps/db"
    reuse: true`, want: `(match.service)`},
		{name: "fail/variable from the node", rule: `
    match: {secret: "db"}
    variable: "apps/{node}/db"
    reuse: true`, want: `({node})`},
		{name: "fail/version from a service label", rule: `
    match: {secret: "db"}
    variable: "apps/db"
    version: "{service_label:v}"
    reuse: true`, want: `({service_label:v})`},
		{name: "fail/a group captured from the service", rule: `
    match: {secret: "db", service: "re:(?P<app>[a-z]+)-api"}
    variable: "apps/{match:app}/db"
    reuse: true`, want: `(match.service, {match:app})`},
		{name: "fail/bundle member from the service", rule: `
    match: {secret: "db"}
    bundle:
      format: json
      variables:
        user: "apps/{service}/user"
    reuse: true`, want: `({service})`},
		{name: "ok/reusable, secret side only", rule: `
    match: {secret: "db"}
    variable: "apps/db"
    allow: {secret_labels: {tier: "*"}}
    reuse: true`},
		{name: "ok/service-side allow without reuse", rule: `
    match: {secret: "db"}
    variable: "apps/db"
    allow: {service_labels: {team: a}}
    reuse: false`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.yml", []byte("version: 1\nwithin: [apps/]\nrules:\n  - name: r"+tc.rule+"\n"))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid rule refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "use reuse: false") {
				t.Errorf("error %v, want %q and the fix", err, tc.want)
			}
		})
	}
}

// TestReuseAcrossRulesIsRefused is issue 21 item 2: a reusable rule after a
// rule that takes some of the same secrets depending on the task (first
// match wins, so that rule decides them for its tasks only) passed
// validate --strict, and the reused copy bypassed the earlier rule's deny.
// The error names the pair at the reuse key.
func TestReuseAcrossRulesIsRefused(t *testing.T) {
	const shared = `
  - name: shared
    match: {secret: "db"}
    variable: apps/db
    reuse: true`
	tests := []struct {
		name, top, before, after string
		rules                    string // instead of before, shared and after
		want                     string // "" = valid
	}{
		{name: "fail/earlier rule denies by service", before: `
  - name: deny-web
    match: {secret: "db", service: "web"}
    variable: apps/db
    allow: {node: "none"}`,
			want: `m.yml:10:12: rule "shared" has reuse: true, but rule "deny-web" (line 3), before it, matches some of the same secrets depending on the task (match.service)`},
		{name: "fail/earlier glob by image takes the secret", before: `
  - name: pinned
    match: {secret: "d*", image: "registry.example.com/*"}
    variable: apps/pinned`,
			want: `rule "pinned" (line 3), before it, matches some of the same secrets depending on the task (match.image)`},
		{name: "fail/earlier rule on a secret label the reusable rule ignores", before: `
  - name: gold
    match: {secret_labels: {tier: gold}, service_labels: {team: a}}
    variable: apps/gold`,
			want: `rule "gold" (line 3), before it, matches some of the same secrets depending on the task (match.service_labels[team])`},
		{name: "fail/earlier re: alternative includes the secret", before: `
  - name: alt
    match: {secret: "re:cache|db", node: "n1"}
    variable: apps/alt`,
			want: `rule "alt" (line 3)`},
		{name: "fail/default identity from the service", top: "identity: \"{service_label:com.docker.stack.namespace}\"\n",
			want: `rule "shared" has reuse: true, but the file's default identity depends on the task ({service_label:com.docker.stack.namespace})`},
		{name: "fail/rule identity from a group captured from the service", after: `
  - name: r2
    match: {secret: "tok", service: "re:(?P<app>[a-z]+)"}
    variable: apps/tok
    identity: "apps/{match:app}"
    reuse: true`,
			want: `rule "r2" has reuse: true but depends on the task (match.service, {match:app})`},
		{name: "ok/a rule's own identity from the secret overrides a default from the task", top: "identity: \"{service}\"\n", rules: `
  - name: shared
    match: {secret: "db"}
    variable: apps/db
    identity: "apps/{secret}"
    reuse: true`},
		{name: "fail/an earlier rule's alternatives: one literal is the secret", before: `
  - name: two
    match: {secret: ["web", "db"], service: web}
    variable: apps/two`,
			want: `rule "two" (line 3)`},
		{name: "fail/earlier glob whose prefix starts the reusable glob's", rules: `
  - name: d-web
    match: {secret: "d*", service: web}
    variable: apps/d
  - name: shared
    match: {secret: "db_*"}
    variable: apps/db
    reuse: true`,
			want: `rule "shared" has reuse: true, but rule "d-web" (line 3)`},
		{name: "fail/earlier rule on another label key", rules: `
  - name: gold
    match: {secret_labels: {tier: gold}, service: web}
    variable: apps/gold
  - name: shared
    match: {secret_labels: {zone: silver}}
    variable: apps/db
    reuse: true`,
			want: `rule "shared" has reuse: true, but rule "gold" (line 3)`},
		{name: "ok/earlier rule naming the service first, for other names", before: `
  - name: web-first
    match: {service: "web", secret: "web_*"}
    variable: apps/web`},
		{name: "ok/earlier service-side rule for other names", before: `
  - name: web-only
    match: {secret: "web_*", service: "web"}
    variable: apps/web`},
		{name: "ok/earlier service-side rule for other literals", before: `
  - name: alt
    match: {secret: "re:cache|queue", node: "n1"}
    variable: apps/alt`},
		{name: "ok/earlier service-side rule for another label value", rules: `
  - name: gold
    match: {secret: "db", secret_labels: {tier: gold}, service: web}
    variable: apps/gold
  - name: silver
    match: {secret: "db", secret_labels: {tier: silver}}
    variable: apps/silver
    reuse: true`},
		{name: "ok/later service-side rule never sees the secret", after: `
  - name: later
    match: {secret: "db", service: "web"}
    variable: apps/other`},
		{name: "ok/earlier secret-side rule decides every task alike", before: `
  - name: first
    match: {secret: "d*"}
    variable: apps/first
    allow: {service: web}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rules := tc.before + shared + tc.after
			if tc.rules != "" {
				rules = tc.rules
			}
			src := "version: 1\n" + tc.top + "rules:" + rules + "\n"
			_, err := Parse("m.yml", []byte(src))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid file refused: %v\n%s", err, src)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "use reuse: false") {
				t.Errorf("error %v\nwant %q and the fix\n%s", err, tc.want, src)
			}
		})
	}
}
