package policy_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/policy"
)

// The benchmarks measure one Resolve on the demo mapping and on a 50-rule
// mapping whose last rule is the one that matches (the worst case: every
// earlier rule is tried and fails). `make bench` runs them:
//
//	go test -run '^$' -bench . -benchmem ./internal/policy/

var sinkDecision policy.Decision

func benchResolve(b *testing.B, p *policy.Policy, req policy.Request) {
	b.Helper()
	if d := p.Resolve(req); !d.Allow {
		b.Fatalf("the benchmark request is denied: %s", d.Reason)
	}
	b.ReportAllocs()
	for b.Loop() {
		sinkDecision = p.Resolve(req)
	}
}

func BenchmarkResolveDemo(b *testing.B) {
	data, err := os.ReadFile("../../docs/examples/mapping.yml")
	if err != nil {
		b.Fatal(err)
	}
	p, err := policy.Parse("mapping.yml", data)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("by-label", func(b *testing.B) {
		benchResolve(b, p, policy.Request{
			SecretName:    "db_password",
			SecretLabels:  map[string]string{"conjur.variable": "apps/demo/db-password"},
			ServiceName:   "demo_web",
			ServiceLabels: map[string]string{"com.docker.stack.namespace": "demo"},
			Image:         "nginx:1.27", NodeID: "node-1",
		})
	})
	b.Run("stack-secrets", func(b *testing.B) {
		benchResolve(b, p, policy.Request{
			SecretName:    "shop_db-password",
			SecretLabels:  map[string]string{"com.docker.stack.namespace": "shop"},
			ServiceName:   "shop_web",
			ServiceLabels: map[string]string{"com.docker.stack.namespace": "shop"},
			Image:         "nginx:1.27", NodeID: "node-1",
		})
	})
}

// fiftyRules is a mapping of 49 rules that do not match the benchmark
// request (globs and re: patterns on every kind of condition) followed by
// one that does, with an allow section.
func fiftyRules() string {
	var sb strings.Builder
	sb.WriteString("version: 1\nwithin: [apps/, shared/]\nrules:\n")
	for i := range 49 {
		fmt.Fprintf(&sb, "  - name: team-%02d\n    match:\n", i)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&sb, "      secret_labels: {com.docker.stack.namespace: \"team%02d-*\"}\n", i)
		case 1:
			fmt.Fprintf(&sb, "      secret: \"re:team%02d_(?P<key>[a-z-]+)\"\n", i)
		case 2:
			fmt.Fprintf(&sb, "      service: [\"team%02d-api\", \"team%02d-worker\"]\n      secret_labels: {conjur.variable: \"*\"}\n", i, i)
		case 3:
			fmt.Fprintf(&sb, "      service_labels: {team: \"%02d\"}\n      image: [\"registry.example.com/team%02d/*\"]\n", i, i)
		}
		switch i % 4 {
		case 1:
			fmt.Fprintf(&sb, "    variable: \"apps/team%02d/{match:key}\"\n", i)
		default:
			fmt.Fprintf(&sb, "    variable: \"apps/team%02d/{secret}\"\n", i)
		}
	}
	sb.WriteString(`  - name: stack-secrets
    match:
      secret_labels: {com.docker.stack.namespace: "*"}
    variable: "apps/{stack}/{secret_key}"
    allow:
      service_labels: {com.docker.stack.namespace: "{stack}"}
      image: ["registry.example.com/*"]
`)
	return sb.String()
}

func BenchmarkResolve50Rules(b *testing.B) {
	p, err := policy.Parse("fifty.yml", []byte(fiftyRules()))
	if err != nil {
		b.Fatal(err)
	}
	benchResolve(b, p, policy.Request{
		SecretName:    "shop_db-password",
		SecretLabels:  map[string]string{"com.docker.stack.namespace": "shop"},
		ServiceName:   "shop_web",
		ServiceLabels: map[string]string{"com.docker.stack.namespace": "shop", "team": "7"},
		Image:         "registry.example.com/shop/web:1.4", NodeID: "node-1",
	})
}
