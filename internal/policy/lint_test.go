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
