package conjurdev

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadDemo loads dir/conjur-policy.yml at the root branch (POST), then the
// values in dir/values.yml: a mapping of variable id to value, where a
// value written "base64:..." is decoded first (for binary values).
func (s *Server) LoadDemo(dir string) (LoadResult, error) {
	policy, err := os.ReadFile(filepath.Join(dir, "conjur-policy.yml"))
	if err != nil {
		return LoadResult{}, fmt.Errorf("conjurdev: demo policy: %w", err)
	}
	res, err := s.LoadConjurPolicy(ModePost, "root", policy)
	if err != nil {
		return LoadResult{}, fmt.Errorf("conjurdev: load %s: %w", filepath.Join(dir, "conjur-policy.yml"), err)
	}
	if err := s.LoadValuesFile(filepath.Join(dir, "values.yml")); err != nil {
		return LoadResult{}, err
	}
	return res, nil
}

// LoadValuesFile sets the values listed in a YAML file (variable id ->
// value, "base64:..." for binary values).
func (s *Server) LoadValuesFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("conjurdev: values: %w", err)
	}
	values, err := ParseValues(data)
	if err != nil {
		return fmt.Errorf("conjurdev: values file %s: %w", path, err)
	}
	ids := make([]string, 0, len(values))
	for id := range values {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := s.SetSecret(id, values[id]); err != nil {
			return fmt.Errorf("conjurdev: values file %s: variable %q: %w", path, id, err)
		}
	}
	return nil
}

var yamlLine = regexp.MustCompile(`line \d+`)

// ParseValues reads a values document: a mapping of variable id to a
// string value, "base64:<std base64>" for binary values. Errors never
// repeat a value.
func ParseValues(data []byte) (map[string][]byte, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		// yaml's messages may quote the document, and so a value: keep
		// only the line number.
		where := ""
		if m := yamlLine.FindString(err.Error()); m != "" {
			where = " (" + m + ")"
		}
		return nil, fmt.Errorf("not a YAML mapping of variable id to value%s", where)
	}
	out := make(map[string][]byte, len(raw))
	var problems []string
	for id, v := range raw {
		var text string
		switch v := v.(type) {
		case string:
			text = v
		case int, int64, float64, bool:
			text = fmt.Sprint(v)
		default:
			problems = append(problems, fmt.Sprintf("%q: the value must be a string", id))
			continue
		}
		if enc, ok := strings.CutPrefix(text, "base64:"); ok {
			b, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%q: the base64: value is not valid standard base64", id))
				continue
			}
			out[id] = b
			continue
		}
		out[id] = []byte(text)
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return out, nil
}
