package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBundleFormatsAreOneList: docs/mapping.schema.json's format enum and
// description, and docs/mapping.md's format table, name exactly the formats
// of bundleFormats, in its order; every text format has a reader for the
// round-trip fuzzing.
func TestBundleFormatsAreOneList(t *testing.T) {
	s := loadSchema(t)
	var format struct {
		Description string   `json:"description"`
		Enum        []string `json:"enum"`
	}
	if err := json.Unmarshal(s.Definitions.Bundle.Properties["format"], &format); err != nil {
		t.Fatalf("docs/mapping.schema.json's bundle format: %v", err)
	}
	if !slices.Equal(format.Enum, formatNames()) {
		t.Errorf("docs/mapping.schema.json's format enum %v, want %v", format.Enum, formatNames())
	}
	var parts []string
	for _, f := range bundleFormats {
		parts = append(parts, f.name+": "+f.summary)
	}
	if want := strings.Join(parts, "; ") + "."; format.Description != want {
		t.Errorf("docs/mapping.schema.json's format description\n%q\nwant (from bundleFormats)\n%q", format.Description, want)
	}
	doc, err := os.ReadFile(filepath.Join(docsDir, "mapping.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range bundleFormats {
		if !strings.Contains(string(doc), "\n| `"+f.name+"` |") {
			t.Errorf("docs/mapping.md's format table has no row for %s", f.name)
		}
		if _, ok := readers[f.name]; !ok && !f.anyBytes {
			t.Errorf("format %s has no reader in readers (bundle_fuzz_test.go) for FuzzRenderRoundTrip", f.name)
		}
	}
}
