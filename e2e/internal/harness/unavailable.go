package harness

import (
	"os"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true, as CI services and
// .ci/run set it).
func InCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// Unavailable is what a test does when it cannot reach its real parts (the
// Docker Engine, the lab, a name it needs): outside CI it skips with the
// reason; with CI=true it fails naming what is missing, so that CI never
// passes a suite it did not run.
func Unavailable(t testing.TB, what, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s cannot run: %s (CI=true: a test that cannot reach its real parts fails rather than skips; fix the machine or run without CI=true)", what, reason)
		return
	}
	t.Skip(what + " skipped: " + reason)
}
