package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// The golden files under testdata/policy/ hold the exact output of the
// policy commands. Rewrite them with: go test ./cmd/conjur-swarm/ -run TestPolicyGolden -update
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata/")
	}
}

// runCLI runs the root command in-process and renders what a user would
// see: stdout, stderr and the exit status main would choose.
func runCLI(args ...string) string {
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			code = 1
			fmt.Fprintln(&stderr, "conjur-swarm:", err)
		}
	}
	return fmt.Sprintf("$ conjur-swarm %s\nexit status %d\n--- stdout\n%s--- stderr\n%s",
		strings.Join(args, " "), code, stdout.String(), stderr.String())
}

func TestPolicyGolden(t *testing.T) {
	const m = "testdata/policy/mapping.yml"
	const identity = "../../docs/examples/mapping-recipes/per-stack-identity.yml"
	stack := []string{"--secret", "web_db_password", "--secret-label", "com.docker.stack.namespace=web",
		"--secret-label", "conjur.version=2", "--service", "web_api", "--service-label", "com.docker.stack.namespace=web",
		"--image", "registry.example.com/web/api:1.4", "--node", "n1"}
	tests := []cliCase{
		{"validate-ok", []string{"policy", "validate", m}, 0},
		{"validate-strict", []string{"policy", "validate", "--strict", m}, 1},
		{"validate-reuse-service-side", []string{"policy", "validate", "testdata/policy/reuse.yml"}, 1},
		{"validate-strict-clean", []string{"policy", "validate", "--strict", "../../docs/examples/mapping-recipes/per-stack.yml"}, 0},
		{"validate-broken", []string{"policy", "validate", "testdata/policy/broken.yml"}, 1},
		{"validate-several", []string{"policy", "validate", m, "testdata/policy/broken.yml"}, 1},
		{"validate-missing-file", []string{"policy", "validate", "testdata/policy/nope.yml"}, 1},
		{"explain-allow-by-label", []string{"policy", "explain", "-f", m, "--secret", "db", "--secret-label", "conjur.variable=apps/db/password"}, 0},
		{"explain-allow-stack", append([]string{"policy", "explain", "-f", m}, stack...), 0},
		{"explain-allow-stack-json", append([]string{"policy", "explain", "-f", m, "-o", "json"}, stack...), 0},
		{"explain-deny-other-stack", []string{"policy", "explain", "-f", m, "--secret", "web_db_password",
			"--secret-label", "com.docker.stack.namespace=web", "--secret-label", "conjur.version=2",
			"--service-label", "com.docker.stack.namespace=evil", "--image", "registry.example.com/x"}, 3},
		{"explain-deny-other-stack-json", []string{"policy", "explain", "-f", m, "-o", "json", "--secret", "web_db_password",
			"--secret-label", "com.docker.stack.namespace=web", "--secret-label", "conjur.version=2",
			"--service-label", "com.docker.stack.namespace=evil", "--image", "registry.example.com/x"}, 3},
		{"explain-deny-no-rule", []string{"policy", "explain", "-f", m, "--secret", "plain"}, 3},
		{"explain-deny-hostile-label", []string{"policy", "explain", "-f", m, "--secret", "db",
			"--secret-label", "conjur.variable=apps/../secret/x,apps/\u2215y"}, 3},
		{"explain-builtin", []string{"policy", "explain", "--secret", "db", "--secret-label", "conjur.variable=prod/db/password", "-o", "json"}, 0},
		{"explain-broken-file", []string{"policy", "explain", "-f", "testdata/policy/broken.yml", "--secret", "db"}, 1},
		{"explain-bad-label-flag", []string{"policy", "explain", "--secret", "db", "--secret-label", "novalue"}, 1},
		{"explain-bad-output", []string{"policy", "explain", "--secret", "db", "-o", "yaml"}, 1},
		{"explain-no-secret", []string{"policy", "explain"}, 1},
		{"validate-identity", []string{"policy", "validate", "testdata/policy/identity.yml"}, 0},
		{"validate-identity-broken", []string{"policy", "validate", "testdata/policy/identity-broken.yml"}, 1},
		{"explain-identity", []string{"policy", "explain", "-f", identity, "--secret", "shop_db", "--secret-label", "com.docker.stack.namespace=shop",
			"--service", "shop_web", "--service-label", "com.docker.stack.namespace=shop"}, 0},
		{"explain-identity-json", []string{"policy", "explain", "-f", identity, "-o", "json", "--secret", "shop_db", "--secret-label", "com.docker.stack.namespace=shop",
			"--service", "shop_web", "--service-label", "com.docker.stack.namespace=shop"}, 0},
		{"explain-identity-deny-unfilled", []string{"policy", "explain", "-f", identity, "--secret", "shop_db", "--secret-label", "com.docker.stack.namespace=shop",
			"--service", "shop_web"}, 3},
		{"unknown-subcommand", []string{"policy", "check", "x.yml"}, 1},
	}
	checkCLIGolden(t, "policy", tests)
}

// cliCase is a command line and the exit status it must end with.
type cliCase struct {
	name string
	args []string
	code int
}

// checkCLIGolden runs each case and compares what a user sees with
// testdata/DIR/NAME.golden.
func checkCLIGolden(t *testing.T, dir string, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := runCLI(tc.args...)
			if want := fmt.Sprintf("exit status %d\n", tc.code); !strings.Contains(got, want) {
				t.Errorf("want %q in:\n%s", want, got)
			}
			checkGolden(t, filepath.Join(dir, tc.name+".golden"), got)
		})
	}
}
