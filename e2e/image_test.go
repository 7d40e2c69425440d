package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestImagesAreReproducible: building the agent image (make image) and the
// docs' shell image (make shell-image) twice from the same tree gives the
// same image id both times, so a rebuild replaces nothing and leaves no
// untagged copy behind (before, docker import stamped the time into each
// build: a new id every time).
func TestImagesAreReproducible(t *testing.T) {
	s := getSuite(t)
	for _, tc := range []struct{ target, variable string }{
		{"image", "IMAGE"},
		{"shell-image", "SHELL_IMAGE"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			name := s.name(tc.target) + ":repro"
			t.Cleanup(func() { _, _ = docker("image", "rm", "-f", name) })
			build := func() string {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				out, err := run(ctx, nil, "make", "-C", s.root, "-s", tc.target, tc.variable+"="+name, "VERSION=repro")
				if err != nil {
					t.Fatalf("make %s: %v\n%s", tc.target, err, out)
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				return lines[len(lines)-1]
			}
			first := build()
			second := build()
			if !strings.HasPrefix(first, "sha256:") || first != second {
				t.Fatalf("make %s twice: image ids %q and %q, want one sha256 id", tc.target, first, second)
			}
			if got := mustDocker(t, "image", "inspect", "-f", "{{.Id}}", name); got != first {
				t.Errorf("%s is %s, want the id make printed, %s", name, got, first)
			}
		})
	}
}
