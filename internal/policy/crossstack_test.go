package policy

import (
	"path/filepath"
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
	files, err := filepath.Glob(filepath.Join(docsDir, "examples", "mapping-recipes", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(docsDir, "examples", "mapping.yml"))
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
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

	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			tried, allowed := 0, 0
			forEachLabels(secretChoices, func(sl map[string]string) {
				forEachLabels(serviceChoices, func(svl map[string]string) {
					for _, key := range keys {
						secretLabels := copyWith(sl, stackLabel, "evil")
						serviceLabels := copyWith(svl, stackLabel, "evil")
						req := Request{SecretName: "evil_" + key, SecretLabels: secretLabels,
							ServiceName: "evil_api", ServiceLabels: serviceLabels, Image: image, NodeID: "n1"}
						d := p.Resolve(req)
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
			})
			t.Logf("%d requests of stack evil tried, %d allowed (each in its own branch)", tried, allowed)
		})
	}
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
