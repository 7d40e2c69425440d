package policy

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDocsMappingBlocks checks the YAML shown in docs/mapping.md: every
// mapping file in it parses, and each recipe block equals the recipe file
// it links to (comments aside), so the page and the tested files agree.
func TestDocsMappingBlocks(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(docsDir, "mapping.md"))
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`^\[[^\]]+\]\((examples/mapping-recipes/[^)]+\.yml)\)$`)
	lines := strings.Split(string(data), "\n")
	var recipe string
	blocks, recipes := 0, 0
	for i := 0; i < len(lines); i++ {
		if m := link.FindStringSubmatch(lines[i]); m != nil {
			recipe = m[1]
			continue
		}
		if lines[i] != "```yaml" {
			continue
		}
		start := i + 1
		for i++; i < len(lines) && lines[i] != "```"; i++ {
		}
		block := strings.Join(lines[start:i], "\n") + "\n"
		if !strings.Contains(block, "\nversion: 1\n") && !strings.HasPrefix(block, "version: 1\n") {
			recipe = ""
			continue // a compose snippet or a schema line
		}
		blocks++
		if _, err := Parse(filepath.Join("docs/mapping.md block at line", strconv.Itoa(start)), []byte(block)); err != nil {
			t.Errorf("docs/mapping.md line %d: the YAML does not parse:\n%v", start, err)
		}
		if recipe != "" {
			recipes++
			file, err := os.ReadFile(filepath.Join(docsDir, recipe))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := withoutComments(block), withoutComments(string(file)); got != want {
				t.Errorf("docs/mapping.md line %d differs from %s:\n--- doc\n%s--- file\n%s", start, recipe, got, want)
			}
			recipe = ""
		}
	}
	if blocks < 5 || recipes != 9 {
		t.Errorf("found %d mapping blocks and %d recipe blocks; want at least 5 and 9", blocks, recipes)
	}
}

// withoutComments drops comment lines, trailing comments after "  #" and
// blank lines.
func withoutComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "  #"); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimRight(l, " ")
		if l == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
