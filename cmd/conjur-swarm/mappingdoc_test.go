package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMappingDocShowsTheStatusLines is issue 21 item 9: docs/mapping.md
// said the plugin refuses to start with a broken mapping file (it starts
// and answers MAPPING_INVALID), and did not show how an operator sees that
// a reload was rejected and the last good policy kept. Each status line
// below, as writeStatus renders it (spacing aside), must appear in the page.
func TestMappingDocShowsTheStatusLines(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "mapping.md"))
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	for _, l := range strings.Split(string(doc), "\n") {
		shown[strings.Join(strings.Fields(l), " ")] = true
	}
	if bytes.Contains(doc, []byte("refuses to start")) {
		t.Error(`docs/mapping.md says the plugin "refuses to start" with a broken file; it starts and answers MAPPING_INVALID`)
	}
	states := sampleStatus()
	for state, prefixes := range map[string][]string{
		"mapping-invalid": {"Mapping ", "  problem ", "  check "},
		"healthy":         {"Mapping ", "  rejected "},
	} {
		var out bytes.Buffer
		if err := writeStatus(&out, states[state]); err != nil {
			t.Fatal(err)
		}
		for _, prefix := range prefixes {
			found := false
			for _, l := range strings.Split(out.String(), "\n") {
				if !strings.HasPrefix(l, prefix) {
					continue
				}
				found = true
				if line := strings.Join(strings.Fields(l), " "); !shown[line] {
					t.Errorf("docs/mapping.md does not show the %s status line %q", state, line)
				}
				break
			}
			if !found {
				t.Fatalf("status %s has no line starting %q:\n%s", state, prefix, out.String())
			}
		}
	}
}
