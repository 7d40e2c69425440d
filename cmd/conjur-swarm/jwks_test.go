package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/identity"
)

// TestJWKSGolden: the exact output of jwks --merge and of jwks's refusals.
// The JWKS files under testdata/jwks/ hold public keys only.
func TestJWKSGolden(t *testing.T) {
	const d = "testdata/jwks/"
	checkCLIGolden(t, "jwks", []cliCase{
		{"merge-three-managers", []string{"jwks", "--merge", d + "m1.json", d + "m2.json", d + "m3.json"}, 0},
		{"merge-adds-a-manager-to-the-current-value", []string{"jwks", "--merge", d + "public-keys-m1-m2.json", d + "m3.json", d + "m1.json"}, 0},
		{"merge-duplicate-kid", []string{"jwks", "--merge", d + "m1.json", d + "m1-rekeyed.json"}, 1},
		{"merge-malformed", []string{"jwks", "--merge", d + "m1.json", d + "truncated.json"}, 1},
		{"merge-not-rsa", []string{"jwks", "--merge", d + "ec.json"}, 1},
		{"merge-missing-file", []string{"jwks", "--merge", d + "nope.json"}, 1},
		{"merge-no-files", []string{"jwks", "--merge"}, 1},
		{"merge-with-state-dir", []string{"jwks", "--merge", "--state-dir", "/x", d + "m1.json"}, 1},
		{"next-and-rotate", []string{"jwks", "--next", "--rotate"}, 1},
		{"stray-argument", []string{"jwks", d + "m1.json"}, 1},
	})
}

// TestJWKSRollover runs the documented rollover against a state directory:
// jwks (the first start's key), --next (published, not signing), --rotate.
func TestJWKSRollover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	kids := func(args ...string) ([]string, string) {
		out := runCLI(append([]string{"jwks", "--state-dir", dir}, args...)...)
		if strings.Contains(out, "PRIVATE") || strings.Contains(out, `"d"`) {
			t.Fatalf("jwks printed private key material:\n%s", out)
		}
		_, stdout, _ := strings.Cut(out, "--- stdout\n")
		stdout, _, _ = strings.Cut(stdout, "--- stderr\n")
		var j identity.JWKS
		if err := json.Unmarshal([]byte(stdout), &j); err != nil {
			return nil, out
		}
		var ids []string
		for _, k := range j.Keys {
			ids = append(ids, k.Kid)
		}
		return ids, out
	}
	first, out := kids()
	if len(first) != 1 {
		t.Fatalf("jwks on a new state directory:\n%s", out)
	}
	if again, _ := kids(); strings.Join(again, ",") != first[0] {
		t.Fatalf("jwks again printed %v, want the same key %s", again, first[0])
	}
	withNext, out := kids("--next")
	if len(withNext) != 2 || withNext[0] != first[0] {
		t.Fatalf("jwks --next:\n%s", out)
	}
	rotated, out := kids("--rotate")
	if len(rotated) != 1 || rotated[0] != withNext[1] {
		t.Fatalf("jwks --rotate printed %v, want the next key %s alone:\n%s", rotated, withNext[1], out)
	}
	if _, out := kids("--rotate"); !strings.Contains(out, "exit status 1") || !strings.Contains(out, "no next key to rotate to") {
		t.Fatalf("a second --rotate:\n%s", out)
	}
}
