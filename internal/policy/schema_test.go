package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

type schemaObject struct {
	Properties map[string]json.RawMessage `json:"properties"`
	Required   []string                   `json:"required"`
}

type mappingSchema struct {
	schemaObject
	Definitions struct {
		Rule       schemaObject `json:"rule"`
		Conditions schemaObject `json:"conditions"`
		Bundle     schemaObject `json:"bundle"`
		Member     struct {
			OneOf []schemaObject `json:"oneOf"`
		} `json:"member"`
	} `json:"definitions"`
}

func loadSchema(t *testing.T) mappingSchema {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(docsDir, "mapping.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s mappingSchema
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("docs/mapping.schema.json: %v", err)
	}
	return s
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// TestSchemaMatchesParser keeps docs/mapping.schema.json in step with the
// keys the parser knows.
func TestSchemaMatchesParser(t *testing.T) {
	s := loadSchema(t)
	for _, c := range []struct {
		name         string
		schema, want []string
	}{
		{"top-level", keys(s.Properties), topKeys},
		{"rule", keys(s.Definitions.Rule.Properties), ruleKeys},
		{"match-and-allow", keys(s.Definitions.Conditions.Properties), conditionKeys},
		{"required-top-level", sorted(s.Required), []string{"rules", "version"}},
		{"required-rule", sorted(s.Definitions.Rule.Required), []string{"match", "name"}},
		{"bundle", keys(s.Definitions.Bundle.Properties), bundleKeys},
		{"required-bundle", sorted(s.Definitions.Bundle.Required), []string{"format", "variables"}},
		{"member", memberObjectKeys(s), memberKeys},
	} {
		if diff := cmp.Diff(sorted(c.want), c.schema); diff != "" {
			t.Errorf("%s keys: schema differs from the parser (-parser +schema):\n%s", c.name, diff)
		}
	}
}

// memberObjectKeys returns the keys of the mapping form of a bundle member.
func memberObjectKeys(s mappingSchema) []string {
	for _, o := range s.Definitions.Member.OneOf {
		if len(o.Properties) > 0 {
			return keys(o.Properties)
		}
	}
	return nil
}

// TestSchemaCoversExamples walks the keys of every example mapping in docs/
// through the schema's properties.
func TestSchemaCoversExamples(t *testing.T) {
	s := loadSchema(t)
	files, err := filepath.Glob(filepath.Join(docsDir, "examples", "mapping-recipes", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recipes found: %v", err)
	}
	files = append(files, filepath.Join(docsDir, "examples", "mapping.yml"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var top map[string]any
			if err := yaml.Unmarshal(data, &top); err != nil {
				t.Fatal(err)
			}
			check := func(where string, m map[string]any, props map[string]json.RawMessage) {
				for k := range m {
					if _, ok := props[k]; !ok {
						t.Errorf("%s: key %q is not in the schema", where, k)
					}
				}
			}
			check("top level", top, s.Properties)
			rules, _ := top["rules"].([]any)
			if len(rules) == 0 {
				t.Fatal("no rules")
			}
			for _, r := range rules {
				rm, _ := r.(map[string]any)
				check("rule", rm, s.Definitions.Rule.Properties)
				if bm, ok := rm["bundle"].(map[string]any); ok {
					check("bundle", bm, s.Definitions.Bundle.Properties)
				}
				for _, sec := range []string{"match", "allow"} {
					if cm, ok := rm[sec].(map[string]any); ok {
						check(sec, cm, s.Definitions.Conditions.Properties)
					}
				}
			}
		})
	}
}
