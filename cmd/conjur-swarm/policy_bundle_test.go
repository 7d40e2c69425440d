package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// TestPolicyBundleGolden: validate and explain of bundles and shaped
// variables, text and JSON. Rewrite with -update after checking.
func TestPolicyBundleGolden(t *testing.T) {
	const m = "testdata/policy/bundle.yml"
	shop := []string{"--secret", "shop_db_config", "--secret-label", "com.docker.stack.namespace=shop",
		"--secret-label", "conjur.version=4", "--service", "shop_api", "--service-label", "com.docker.stack.namespace=shop"}
	checkCLIGolden(t, "policy", []cliCase{
		{"validate-bundle-broken", []string{"policy", "validate", "testdata/policy/bundle-broken.yml"}, 1},
		{"explain-bundle-allow", append([]string{"policy", "explain", "-f", m}, shop...), 0},
		{"explain-bundle-allow-json", append([]string{"policy", "explain", "-f", m, "-o", "json"}, shop...), 0},
		{"explain-bundle-deny-member", []string{"policy", "explain", "-f", m, "--secret", "shop_db_config",
			"--secret-label", "com.docker.stack.namespace=shop", "--service-label", "com.docker.stack.namespace=shop"}, 3},
		{"explain-bundle-deny-member-json", []string{"policy", "explain", "-f", m, "-o", "json", "--secret", "shop_db_config",
			"--secret-label", "com.docker.stack.namespace=shop", "--service-label", "com.docker.stack.namespace=shop"}, 3},
		{"explain-field-decode", []string{"policy", "explain", "-f", m, "--secret", "signing_key"}, 0},
		{"explain-field-decode-json", []string{"policy", "explain", "-f", m, "--secret", "signing_key", "-o", "json"}, 0},
	})
}

// TestStatusBundleGolden: the recent decisions list a bundle's member ids,
// and for a failure the member that failed first.
func TestStatusBundleGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)
	members := []string{"apps/shop/aws", "apps/shop/db/password", "apps/shop/db/user"}
	st := pluginapi.Status{
		Version: "v1.1.0", StartedAt: t0, Now: t0.Add(10 * time.Minute), Configured: true,
		Counters: pluginapi.Counters{Requests: 2, Allowed: 1, Errors: 1, ByCode: map[errcode.Code]uint64{"FORBIDDEN": 1}},
		Recent: []audit.Record{
			{Time: t0.Add(9 * time.Minute), Secret: "shop_db_config", Service: "shop_api", Node: "n1", Rule: "db-config",
				Variable: "apps/shop/db/password", Members: members, Decision: audit.DecisionError, Code: "FORBIDDEN", Duration: 3 * time.Millisecond,
				Reason: `conjur-swarm [FORBIDDEN] secret "shop_db_config" (variable "apps/shop/db/password", rule "db-config"): bundle member "password": permit execute`},
			{Time: t0.Add(8 * time.Minute), Secret: "shop_db_config", Service: "shop_api", Node: "n1", Rule: "db-config",
				Members: members, Decision: audit.DecisionAllow, Duration: 2 * time.Millisecond},
		},
	}
	var b strings.Builder
	if err := writeStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("status", "bundle.txt"), b.String())
}
