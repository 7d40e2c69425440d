package policy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestShippedMappingsKeepStacksApart is the attack of issue 11 item 2
// against every mapping file docs/ ships: a stack file deployed as stack
// "evil" may name its secrets evil_<anything> and put any labels on them
// and on its services, except the stack label docker stack deploy sets
// (com.docker.stack.namespace=evil on both), and run any image. Whatever it
// tries, no allowed answer may name a variable of another stack's branch
// (apps/<stack>/..., or apps/<env>/<stack>/... for the per-environment
// recipe).
func TestShippedMappingsKeepStacksApart(t *testing.T) {
	for _, file := range shippedMappings(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			attackAsEvil(t, p)
		})
	}
}

// TestShippedMappingsWithAReusableRule is issue 21 item 2's hostile case
// against every shipped file: a reuse: true rule appended after its rules.
// Where an earlier rule takes stack secrets depending on the task (or the
// default identity is the task's), the file is refused naming the pair;
// elsewhere the attack of TestShippedMappingsKeepStacksApart runs on it and
// every reusable answer must be the same whichever task asks (Swarm hands
// it to them all).
func TestShippedMappingsWithAReusableRule(t *testing.T) {
	refused := map[string]string{
		"per-environment.yml":    `rule "hostile-reuse" has reuse: true, but rule "per-environment" (line `,
		"per-stack-identity.yml": `rule "hostile-reuse" has reuse: true, but the file's default identity depends on the task`,
	}
	for _, file := range shippedMappings(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			src = append(src, "\n  - name: hostile-reuse\n    match: {secret_labels: {com.docker.stack.namespace: \"*\"}}\n"+
				"    variable: "+p.Within()[0]+"shared/token\n    reuse: true\n"...)
			hostile, err := Parse(file, src)
			if want := refused[filepath.Base(file)]; want != "" {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Parse error %v, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("a reusable rule after this file's rules refused: %v", err)
			}
			attackAsEvil(t, hostile)
		})
	}
}

func shippedMappings(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(docsDir, "examples", "mapping-recipes", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(docsDir, "examples", "mapping.yml"))
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	return files
}

// attackAsEvil runs the attack: a stack file deployed as stack "evil" may
// name its secrets evil_<anything> and put any labels on them and on its
// services, except the stack label docker stack deploy sets
// (com.docker.stack.namespace=evil on both), and run any image. No allowed
// answer may name a variable of another stack's branch, and an answer Swarm
// may reuse (DoNotReuse false) must be the same for the services of every
// stack and labels.
func attackAsEvil(t *testing.T, p *Policy) {
	t.Helper()
	victims := []string{"shop", "demo", "billing"}
	var variables, configs []string
	for _, v := range victims {
		variables = append(variables, "apps/"+v+"/db-password", "apps/prod/"+v+"/db_password")
		configs = append(configs, v)
	}
	// Each attacker-chosen label is absent or takes one of its values.
	secretChoices := []struct {
		key    string
		values []string
	}{
		{"conjur.variable", variables},
		{"conjur.version", []string{"1"}},
		{"conjur.bundle", []string{"demo-env", "demo-dsn"}},
		{"conjur.config", configs},
	}
	serviceChoices := []struct {
		key    string
		values []string
	}{
		{"env", []string{"prod", "staging"}},
		{"conjur.config", configs},
	}
	keys := []string{"db_password", "env", "db_dsn", "aws_secret_access_key", "tls_key"}
	// No condition of a mapping file can be failed by a matching image, so
	// the attacker runs the one every shipped allow: image admits.
	const image = "registry.example.com/payments/api:1@sha256:0123abcd"

	// A reusable answer must be the same for any task: with a reuse: true
	// rule, each secret is also asked by a service of stack shop.
	askers := []string{"evil"}
	if slices.ContainsFunc(p.rules, func(r *rule) bool { return r.reuse }) {
		askers = append(askers, "shop")
	}
	tried, allowed, reusable := 0, 0, 0
	forEachLabels(secretChoices, func(sl map[string]string) {
		for _, key := range keys {
			secretLabels := copyWith(sl, stackLabel, "evil")
			ask := func(stack string, svl map[string]string) (Request, Decision) {
				req := Request{SecretName: "evil_" + key, SecretLabels: secretLabels,
					ServiceName: stack + "_api", ServiceLabels: copyWith(svl, stackLabel, stack), Image: image, NodeID: "n1"}
				return req, p.Resolve(req)
			}
			type answer struct {
				req Request
				d   Decision
			}
			var answers []answer
			var reused *answer // a reusable answer for this secret
			forEachLabels(serviceChoices, func(svl map[string]string) {
				for _, stack := range askers {
					req, d := ask(stack, svl)
					answers = append(answers, answer{req, d})
					if d.Allow && !d.DoNotReuse && reused == nil {
						reused = &answers[len(answers)-1]
					}
					if stack != "evil" {
						continue
					}
					tried++
					if !d.Allow {
						continue
					}
					allowed++
					for _, id := range decisionIDs(d) {
						if owner := otherStack(id, victims); owner != "" {
							t.Fatalf("stack evil is served %s, of stack %s's branch, by rule %q\nrequest %+v", id, owner, d.Rule, req)
						}
					}
				}
			})
			if reused == nil {
				continue
			}
			reusable++
			for _, a := range answers {
				if a.d.Allow != reused.d.Allow || !slices.Equal(decisionIDs(a.d), decisionIDs(reused.d)) {
					t.Fatalf("rule %q's reusable answer %v for %+v differs from the answer %v (rule %q) for %+v: the reused copy bypasses it",
						reused.d.Rule, decisionIDs(reused.d), reused.req, decisionIDs(a.d), a.d.Rule, a.req)
				}
			}
		}
	})
	t.Logf("%d requests of stack evil tried, %d allowed (each in its own branch), %d secrets with a reusable answer", tried, allowed, reusable)
}

// otherStack returns the victim whose branch id lies in, or "".
func otherStack(id string, victims []string) string {
	for _, v := range victims {
		for _, prefix := range []string{"apps/" + v + "/", "apps/prod/" + v + "/", "apps/staging/" + v + "/"} {
			if strings.HasPrefix(id, prefix) {
				return v
			}
		}
	}
	return ""
}

func decisionIDs(d Decision) []string {
	if d.Bundle == nil {
		return []string{d.Variable}
	}
	var ids []string
	for _, m := range d.Bundle.Members {
		ids = append(ids, m.Variable)
	}
	return ids
}

// forEachLabels calls fn with every label set where each key is absent or
// takes one of its values.
func forEachLabels(choices []struct {
	key    string
	values []string
}, fn func(map[string]string)) {
	var walk func(i int, m map[string]string)
	walk = func(i int, m map[string]string) {
		if i == len(choices) {
			fn(m)
			return
		}
		walk(i+1, m)
		for _, v := range choices[i].values {
			walk(i+1, copyWith(m, choices[i].key, v))
		}
	}
	walk(0, map[string]string{})
}

func copyWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// TestShippedMappingSurvivesRelabelling is issue 23 item 2's attack on
// docs/examples/mapping.yml: stack blog's file declares
// `stolen: {driver: cyberark/conjur, name: shop_db_password}`, and its
// deploy replaces the labels of shop's secret with blog's (the stack label,
// and any labels blog's file adds). Shop's tasks must still get exactly
// their value when blog added no labels of the mapping's (the owner comes
// from the name), and whatever labels blog adds, no stack's task may be
// served the other stack's variable.
func TestShippedMappingSurvivesRelabelling(t *testing.T) {
	p, err := ParseFile(filepath.Join(docsDir, "examples", "mapping.yml"))
	if err != nil {
		t.Fatal(err)
	}
	ask := func(serviceStack string, secretLabels map[string]string) Decision {
		return p.Resolve(Request{SecretName: "shop_db_password", SecretLabels: secretLabels,
			ServiceName: serviceStack + "_api", ServiceLabels: labels(stackLabel, serviceStack), Image: "shop/api:1", NodeID: "n1"})
	}
	relabelled := labels(stackLabel, "blog")
	if d := ask("shop", relabelled); !d.Allow || d.Variable != "apps/shop/db_password" {
		t.Fatalf("shop's task after blog relabelled shop_db_password: allow=%v %q (%s), want apps/shop/db_password", d.Allow, d.Variable, d.Reason)
	}
	if d := ask("blog", relabelled); d.Allow {
		t.Fatalf("blog's task is served shop's secret %q by rule %q", d.Variable, d.Rule)
	}
	// The labels blog's file may add besides: none, or the mapping's own.
	choices := []struct {
		key    string
		values []string
	}{
		{"conjur.variable", []string{"apps/shop/api-token", "apps/blog/x", "apps/demo/db-password"}},
		{"conjur.bundle", []string{"demo-env", "demo-dsn"}},
	}
	forEachLabels(choices, func(extra map[string]string) {
		sl := copyWith(extra, stackLabel, "blog")
		for _, stack := range []string{"shop", "blog"} {
			d := ask(stack, sl)
			for _, id := range decisionIDs(d) {
				if d.Allow && !strings.HasPrefix(id, "apps/"+stack+"/") {
					t.Errorf("stack %s's task is served %s by rule %q with secret labels %v", stack, id, d.Rule, sl)
				}
			}
		}
	})
}
