package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// storeBroken has two problems (an unknown field and a rule without a
// variable).
const storeBroken = `version: 1
within: [apps/]
rules:
  - name: by-label
    match: {secret_labels: {conjur.variable: "*"}}
    variabel: "{secret_label:conjur.variable}"
`

// TestOpenStoreFailsClosed: a mapping file that is broken or missing when
// the plugin starts does not stop it. Every request is refused with
// ConditionMappingInvalid, naming the file and its first problem; Status
// lists every problem; the file is adopted once it is good.
func TestOpenStoreFailsClosed(t *testing.T) {
	req := Request{SecretName: "db", SecretLabels: map[string]string{"conjur.variable": "apps/db"}}
	tests := []struct {
		name      string
		write     func(path string) error
		wantFirst string // in the refusal
		problems  int
	}{
		{
			name:      "fail/broken file",
			write:     func(path string) error { return os.WriteFile(path, []byte(storeBroken), 0o600) },
			wantFirst: `mapping.yml:4:5: rule "by-label" has no variable`,
			problems:  2,
		},
		{
			name:      "fail/missing file",
			write:     func(string) error { return nil },
			wantFirst: "no such file or directory",
			problems:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mapping.yml")
			if err := tt.write(path); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.InfoLevel)
			s := OpenStore(path, zap.New(core))

			d := s.Resolve(req)
			if d.Allow || d.Condition != ConditionMappingInvalid || d.Variable != "" {
				t.Fatalf("Resolve with no policy in force: %+v, want a refusal with condition %q", d, ConditionMappingInvalid)
			}
			for _, want := range []string{path, tt.wantFirst, "policy validate"} {
				if !strings.Contains(d.Reason, want) {
					t.Errorf("refusal %q lacks %q", d.Reason, want)
				}
			}
			st := s.Status()
			if !st.FailClosed || st.Hash != "" || st.Rules != 0 || len(st.Problems) != tt.problems || !strings.Contains(st.LastError, tt.wantFirst) {
				t.Errorf("Status while closed: %+v, want FailClosed, no hash, %d problems", st, tt.problems)
			}
			if logs.FilterMessageSnippet("every request is refused MAPPING_INVALID").Len() != 1 {
				t.Errorf("no log line says the plugin fails closed: %v", logs.All())
			}

			// Polls of an unchanged file change nothing.
			s.Check()
			s.Check()
			if d := s.Resolve(req); d.Condition != ConditionMappingInvalid {
				t.Fatalf("after polls of the unchanged file: %+v", d)
			}

			writeByRename(t, path, storeV1)
			s.Check() // seen once
			if d := s.Resolve(req); d.Condition != ConditionMappingInvalid {
				t.Fatalf("a content read once was applied: %+v", d)
			}
			s.Check() // confirmed
			if d := s.Resolve(req); !d.Allow || d.Variable != "apps/db" {
				t.Fatalf("after the fix: %+v, want allowed apps/db", d)
			}
			st = s.Status()
			if st.FailClosed || st.Rules != 1 || st.LastError != "" || st.Problems != nil {
				t.Errorf("Status after the fix: %+v", st)
			}
			if logs.FilterMessageSnippet("the file is good now").Len() != 1 {
				t.Errorf("no log line says the file was adopted: %v", logs.All())
			}
		})
	}
}

// TestStoreRejectionListsProblems: a broken new version is rejected with
// every problem listed in Status, and the good one stays.
func TestStoreRejectionListsProblems(t *testing.T) {
	s, path, _ := newTestStore(t, storeV1)
	writeInPlace(t, path, storeBroken)
	s.Check()
	s.Check()
	st := s.Status()
	if st.FailClosed || st.Rules != 1 || len(st.Problems) != 2 || !strings.Contains(st.LastError, "keeping the last good policy") {
		t.Errorf("Status after a broken reload: %+v", st)
	}
}
