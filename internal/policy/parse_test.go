package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type okCase struct {
	name   string
	src    string
	rules  []string
	within []string
}

// okCases are good files (also fuzz seeds).
var okCases = []okCase{
	{"ok/design-example", `version: 1
account: myorg
within: [apps/, shared/]
rules:
  - name: by-label
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "{secret_label:conjur.variable}"
  - name: stack-secrets
    match:
      secret_labels: {com.docker.stack.namespace: "*"}
    variable: "apps/{stack}/{secret_key}"
    allow:
      service_labels: {com.docker.stack.namespace: "{stack}"}
      image: ["registry.example.com/*"]
    reuse: false
    version: "{secret_label:conjur.version}"
`, []string{"by-label", "stack-secrets"}, []string{"apps/", "shared/"}},
	{"ok/match-everything", "version: 1\nrules:\n  - name: all\n    match: {}\n    variable: apps/{secret}\n", []string{"all"}, nil},
	{"ok/literal-version-int", "version: 1\nrules:\n  - name: a\n    match: {}\n    variable: apps/x\n    version: 3\n", []string{"a"}, nil},
	{"ok/escaped-brace-in-match-glob", "version: 1\nrules:\n  - name: a\n    match: {secret: 'x\\{y\\}'}\n    variable: apps/x\n", []string{"a"}, nil},
	{"ok/identity-default-and-rule", "version: 1\nidentity: '{service_label:com.docker.stack.namespace}'\nrules:\n  - name: a\n    match: {secret: 're:(?P<t>[a-z]+)'}\n    variable: apps/{match:t}\n    identity: tiers/{match:t}\n  - name: b\n    match: {}\n    variable: apps/x\n", []string{"a", "b"}, nil},
	{"ok/re-quantifier-braces", "version: 1\nrules:\n  - name: a\n    match: {secret: 're:(?P<k>[a-z]{2,5})'}\n    variable: apps/{match:k}\n", []string{"a"}, nil},
}

func TestParseOK(t *testing.T) {
	for _, tc := range append(okCases, bundleOKCases...) {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("f.yml", []byte(tc.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.rules, p.Rules()); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.within, p.Within()); diff != "" {
				t.Errorf("within (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(p.Hash(), "sha256:") || len(p.Hash()) != 7+64 {
				t.Errorf("Hash %q", p.Hash())
			}
		})
	}
}

type problemCase struct {
	name string
	src  string
	want []string // every problem, "LINE:COL: message" (message may be a prefix ending in "...")
}

// problemCases are broken files and every problem Parse reports (also fuzz
// seeds).
var problemCases = []problemCase{
	{"fail/empty-file", "", []string{"1:1: the file is empty: a mapping file starts with \"version: 1\" and lists rules"}},
	{"fail/yaml-syntax", "version: 1\nrules: [\n", []string{"2:1: YAML syntax: did not find expected node content"}},
	{"fail/not-a-mapping", "- a\n", []string{"1:1: the file must be a mapping (key: value lines), got a list"}},
	{"fail/missing-version-and-rules", "account: x\n", []string{
		"1:1: missing version: start the file with \"version: 1\"",
		"1:1: missing rules: list at least one rule under \"rules:\"",
	}},
	{"fail/wrong-version", "version: 2\nrules: []\n", []string{
		"1:10: version must be 1 (the only format version), got \"2\"",
		"2:8: rules is empty: with no rules every request is denied; add a rule",
	}},
	{"fail/unknown-keys-with-suggestions", `version: 1
rule: []
rules:
  - name: a
    match:
      secret_label: {x: "*"}
      secrets: "*"
    variabel: apps/x
    secret_labels: {x: y}
`, []string{
		`2:1: unknown key "rule" in the file (did you mean "rules"?)`,
		`4:5: rule "a" has no variable: add "variable: ...", e.g. "apps/{stack}/{secret_key}"`,
		`6:7: unknown key "secret_label" in rule "a" match (did you mean "secret_labels"?)`,
		`7:7: unknown key "secrets" in rule "a" match (did you mean "secret"?)`,
		`8:5: unknown key "variabel" in rule (did you mean "variable"?)`,
		`9:5: unknown key "secret_labels" in rule (conditions go under match: or allow:)`,
	}},
	{"fail/missing-and-duplicate-names", `version: 1
rules:
  - match: {}
    variable: apps/x
  - name: a
    match: {}
    variable: apps/x
  - name: a
    match: {}
    variable: apps/y
  - name: "bad name"
    match: {}
    variable: apps/z
`, []string{
		`3:5: rule without a name: add "name: ..." (names appear in logs, audit and explain)`,
		`8:11: duplicate rule name "a" (first used at line 5): rule names must be unique`,
		`11:11: rule name "bad name": use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
	}},
	{"fail/bad-patterns", `version: 1
rules:
  - name: a
    match:
      secret: "re:(unclosed"
      service: "[a-"
      image: "re:"
      node: "{node}"
      secret_labels: {k: "re:{stack}-x"}
    variable: apps/x
`, []string{
		"5:19: match.secret: bad re: pattern: missing closing ): `(unclosed`",
		`6:16: match.service: bad glob: glob "[a-" has an unclosed [`,
		`7:15: match.image: empty re: pattern; write re:<RE2 expression>`,
		`8:13: match.node: placeholders such as {node} are expanded only in allow, variable and version; in match use a glob or re: (write \{ for a literal brace)`,
		`9:30: match.secret_labels[k]: placeholders are not expanded in re: patterns; use a glob to compare with {stack}`,
	}},
	{"fail/placeholders", `version: 1
rules:
  - name: a
    match:
      secret: "re:(?P<team>[a-z]+)"
    variable: "apps/{stak}/{match:tem}/{secret_label}/{service:x}/{oops"
    allow:
      service_labels: {env: "{match:nope}"}
`, []string{
		`6:21: variable: unknown placeholder {stak} (did you mean {stack}?); known: ...`,
		`6:28: variable: {match:tem}: no re: pattern in this rule's match defines a group named "tem" (groups: team); did you mean {match:team}?`,
		`6:40: variable: placeholder {secret_label} needs an argument: write {secret_label:NAME}`,
		`6:55: variable: placeholder {service:x} takes no argument: write {service}`,
		`6:67: variable: unclosed placeholder in ...`,
		`8:29: allow.service_labels[env]: {match:nope}: no re: pattern in this rule's match defines a group named "nope" (groups: team)`,
	}},
	{"fail/match-group-missing", `version: 1
rules:
  - name: a
    match: {secret: "*"}
    variable: "apps/{match:key}"
`, []string{
		`5:21: variable: {match:key}: no re: pattern in this rule's match defines a group named "key"; define one with re:(?P<key>...)`,
	}},
	{"fail/malformed-within", `version: 1
within: [apps, /x/, "a/../", ""]
rules:
  - name: a
    match: {}
    variable: apps/x
`, []string{
		`2:10: within entry "apps" must end with / (did you mean "apps/"?)`,
		`2:16: within entry "/x/" is not a branch: it starts with /`,
		`2:21: within entry "a/../" is not a branch: it has a ".." path segment`,
		`2:30: within entry "" must end with / (did you mean "/"?)`,
	}},
	{"fail/within-empty-and-variable-outside", `version: 1
within: []
rules:
  - name: a
    match: {}
    variable: "secret/{secret}"
`, []string{
		`2:9: within is empty, which admits no variable: list branches such as [apps/], or remove within`,
	}},
	{"fail/variable-outside-within", `version: 1
within: [apps/]
rules:
  - name: a
    match: {}
    variable: "secret/{secret}"
  - name: b
    match: {}
    variable: "ap{secret}"
`, []string{
		`6:15: variable "secret/{secret}" always lies outside within (apps/): every request would be denied`,
	}},
	{"fail/variable-bad-literals", `version: 1
rules:
  - name: a
    match: {}
    variable: "/apps/{secret}"
  - name: b
    match: {}
    variable: "apps//{secret}"
  - name: c
    match: {}
    variable: "apps/{secret} x"
  - name: d
    match: {}
    variable: "apps/%2e/{secret}"
`, []string{
		`5:15: variable "/apps/{secret}" can never be a valid id: it starts with /`,
		`8:15: variable "apps//{secret}" can never be a valid id: it has an empty path segment (// or a / at the end)`,
		`11:29: variable "apps/{secret} x" contains whitespace (U+0020)`,
		`14:21: variable "apps/%2e/{secret}" contains '%'`,
	}},
	{"fail/version-and-reuse", `version: 1
rules:
  - name: a
    match: {}
    variable: apps/x
    version: "v{secret}"
    reuse: "no"
  - name: b
    match: {}
    variable: apps/x
    version: 0
`, []string{
		`6:15: version "v{secret}": outside placeholders a version holds only digits`,
		`7:12: reuse must be true or false, got "no"`,
		`11:14: version "0" is not a positive integer (at most 9 digits)`,
	}},
	{"fail/structure", `version: 1
account: "my org"
rules:
  - name: a
    variable: apps/x
  - name: b
    match:
      secret_labels: {}
      image: []
    variable: apps/x
    variable: apps/y
  - name: c
    match: &m {}
    allow: *m
    variable: apps/z
---
version: 1
`, []string{
		`2:10: account "my org": use letters, digits, '.', '_' or '-' (at most 128), or remove account to use the plugin's CONJUR_ACCOUNT`,
		`4:5: rule "a" has no match: add match conditions, or "match: {}" to match every request`,
		`8:22: match.secret_labels is empty: name at least one label, or remove the key`,
		`9:14: match.image is an empty list, which nothing matches: give at least one pattern`,
		`11:5: rule: duplicate key "variable" (first at line 10)`,
		`14:12: rule: anchors and aliases (*m) are not supported; write the value out`,
		`16:1: a second YAML document: a mapping file holds exactly one (remove the --- separator)`,
	}},
}

func TestParseProblems(t *testing.T) {
	for _, tc := range append(problemCases, bundleProblemCases...) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yml", []byte(tc.src))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse error %v, want Problems", err)
			}
			var got []string
			for _, p := range ps {
				if p.File != "f.yml" || p.Line < 1 || p.Col < 1 {
					t.Errorf("problem without a position: %+v", p)
				}
				got = append(got, strings.TrimPrefix(p.String(), "f.yml:"))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i := range got {
				w := tc.want[i]
				if prefix, ok := strings.CutSuffix(w, "..."); ok {
					if !strings.HasPrefix(got[i], prefix) {
						t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], w)
					}
				} else if got[i] != w {
					t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], w)
				}
			}
		})
	}
}

func TestProblemsError(t *testing.T) {
	ps := Problems{{File: "m.yml", Line: 2, Col: 3, Msg: "a"}, {File: "m.yml", Line: 4, Col: 1, Msg: "b"}}
	if got, want := ps.Error(), "m.yml:2:3: a\nm.yml:4:1: b"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
