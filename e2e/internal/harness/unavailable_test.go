package harness

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a test ended instead of
// ending the caller.
type recorder struct {
	testing.TB
	failed, skipped string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }
func (r *recorder) Skip(a ...any)                  { r.skipped = fmt.Sprint(a...) }

func TestUnavailableFailsInCIAndSkipsOutside(t *testing.T) {
	for _, tt := range []struct {
		name, ci string
		wantFail bool
	}{
		{"fail/CI=true", "true", true},
		{"fail/CI=1", "1", true},
		{"ok/skips without CI", "", false},
		{"ok/skips with CI=false", "false", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{}
			Unavailable(r, "the e2e suite", "`docker info` failed")
			got := r.failed
			if !tt.wantFail {
				got = r.skipped
			}
			if got == "" || !strings.Contains(got, "the e2e suite") || !strings.Contains(got, "`docker info` failed") {
				t.Fatalf("failed %q, skipped %q; want the test to %s naming what is missing", r.failed, r.skipped, map[bool]string{true: "fail", false: "skip"}[tt.wantFail])
			}
			if tt.wantFail == (r.skipped != "") {
				t.Errorf("failed %q, skipped %q", r.failed, r.skipped)
			}
		})
	}
}
