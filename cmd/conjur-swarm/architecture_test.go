package main

import (
	"go/parser"
	"go/token"
	"io/fs"
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

// TestArchitectureImportsPointDown: a package imports only packages listed
// below it on docs/architecture.md's map (its own subpackages, such as a
// test fake's, count as itself). Test files are left out: a test may drive
// any package.
func TestArchitectureImportsPointDown(t *testing.T) {
	const root = "../.."
	const module = "github.com/cyberark/conjur-swarm/"
	doc, err := os.ReadFile(filepath.Join(root, "docs/architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9/_-]+)` \\|")
	var order []string
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		order = append(order, m[1])
	}
	rank := func(pkg string) int {
		for i, p := range order {
			if pkg == p || strings.HasPrefix(pkg, p+"/") {
				return i
			}
		}
		return -1
	}
	fset := token.NewFileSet()
	for i, pkg := range order {
		err := filepath.WalkDir(filepath.Join(root, pkg), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				p := strings.Trim(imp.Path.Value, `"`)
				if !strings.HasPrefix(p, module) {
					continue
				}
				p = strings.TrimPrefix(p, module)
				if r := rank(p); r < i {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s (%s) imports %s, which docs/architecture.md lists above it (or not at all): move the code or the row", rel, pkg, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(order) < 15 {
		t.Fatalf("found only %d package rows in docs/architecture.md; is the pattern still right?", len(order))
	}
}
