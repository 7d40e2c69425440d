package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestArchitectureNamesRealPackages: every package directory and every file
// docs/architecture.md names exists, so the map stays true as code moves.
func TestArchitectureNamesRealPackages(t *testing.T) {
	const root = "../.."
	doc, err := os.ReadFile(filepath.Join(root, "docs/architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Paths of the repository, as the page writes them: a package
	// (internal/x, cmd/x, bench/x, e2e) or a file below one.
	path := regexp.MustCompile("(?:^|[\\s`(|])((?:internal|cmd|bench)/[a-z0-9_./-]*[a-z0-9_]|e2e|plugin/config\\.json|docs/[a-z0-9_.-]+\\.(?:md|json))")
	seen := map[string]bool{}
	for _, m := range path.FindAllStringSubmatch(string(doc), -1) {
		p := strings.TrimSuffix(m[1], ".")
		if seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("docs/architecture.md names %s, which does not exist: %v", p, err)
		}
	}
	// Every package of the module is on the map.
	for _, dir := range []string{"internal", "cmd", "bench"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if p := dir + "/" + e.Name(); e.IsDir() && !seen[p] {
				t.Errorf("package %s is not on docs/architecture.md's map", p)
			}
		}
	}
	if len(seen) < 20 {
		t.Fatalf("found only %d paths in docs/architecture.md; is the pattern still right?", len(seen))
	}
}
