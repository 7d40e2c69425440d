package errcode

import (
	"flag"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/troubleshooting.md's error code table")

var tableMarker = regexp.MustCompile(`(?s)(<!-- begin error code table[^\n]*-->\n)(.*?)(<!-- end error code table -->)`)

// TestTroubleshootingTable: docs/troubleshooting.md's error code table is
// exactly what the catalogue renders.
func TestTroubleshootingTable(t *testing.T) {
	const path = "../../docs/troubleshooting.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g := tableMarker.FindSubmatchIndex(data)
	if g == nil {
		t.Fatal("docs/troubleshooting.md has no <!-- begin error code table --> ... <!-- end error code table --> block")
	}
	got, want := string(data[g[4]:g[5]]), Table()
	if got == want {
		return
	}
	if !*update {
		t.Fatalf("docs/troubleshooting.md's error code table differs from the catalogue; run\n"+
			"  go test ./internal/errcode -run TestTroubleshootingTable -update\nwant:\n%s\ngot:\n%s", want, got)
	}
	out := string(data[:g[4]]) + want + string(data[g[5]:])
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCatalogue: every code is listed once, in upper snake case, with a
// when and a fix that an Err can carry (no Markdown link, no final period).
func TestCatalogue(t *testing.T) {
	word := regexp.MustCompile(`^[A-Z]+(_[A-Z]+)*$`)
	seen := map[Code]bool{}
	for _, e := range catalog {
		if seen[e.code] || !word.MatchString(string(e.code)) {
			t.Errorf("code %q is listed twice or is not UPPER_SNAKE", e.code)
		}
		seen[e.code] = true
		if e.summary == "" || e.when == "" || e.fix == "" || strings.ContainsAny(e.fix, "[]|") || strings.HasSuffix(e.fix, ".") {
			t.Errorf("code %s: want a when and a plain fix without a final period, got %q / %q", e.code, e.when, e.fix)
		}
		if e.code.Fix() != e.fix {
			t.Errorf("code %s: Fix() = %q", e.code, e.code.Fix())
		}
	}
	if n := len(All()) + len(RolloutAgent()); n != len(catalog) {
		t.Errorf("All() and RolloutAgent() have %d codes, the catalogue %d", n, len(catalog))
	}
	for _, e := range catalog {
		if e.class < Unreachable || e.class > Failure {
			t.Errorf("code %s has no class", e.code)
		}
	}
	if Code("NO_SUCH").Fix() != "" || !strings.Contains(Code("NO_SUCH").Message(), "NO_SUCH") {
		t.Error("an unknown code has a fix, or its message does not name it")
	}
	if got, want := Unavailable.Message(), "no Conjur appliance URL answered; "+Unavailable.Fix(); got != want {
		t.Errorf("Message() = %q, want %q", got, want)
	}
}

// TestClassesDecideBehaviour: what each code makes the product do follows
// from its class alone: the stale rule, the bootstrap agent's retry and the
// handoff's HTTP status.
func TestClassesDecideBehaviour(t *testing.T) {
	for _, tt := range []struct {
		code      Code
		stale     bool
		transient bool
		handoff   int
	}{
		{Unavailable, true, true, http.StatusBadGateway},
		{Timeout, true, true, http.StatusBadGateway},
		{TLS, false, true, http.StatusBadGateway},
		{NotConfigured, false, true, http.StatusServiceUnavailable},
		{AuthRefused, false, false, http.StatusForbidden},
		{Forbidden, false, false, http.StatusForbidden},
		{NotFound, false, false, http.StatusForbidden},
		{CredentialRejected, false, false, http.StatusBadRequest},
		{ValueUnusable, false, false, http.StatusBadRequest},
		{Internal, false, false, http.StatusInternalServerError},
		{Canceled, false, false, http.StatusInternalServerError},
		{"NO_SUCH", false, false, http.StatusInternalServerError},
	} {
		t.Run(string(tt.code), func(t *testing.T) {
			if got := tt.code.MayServeStale(); got != tt.stale {
				t.Errorf("MayServeStale() = %t, want %t", got, tt.stale)
			}
			if got := tt.code.Transient(); got != tt.transient {
				t.Errorf("Transient() = %t, want %t", got, tt.transient)
			}
			if got := tt.code.HandoffStatus(); got != tt.handoff {
				t.Errorf("HandoffStatus() = %d, want %d", got, tt.handoff)
			}
		})
	}
}

// TestRotationDocNamesTheAgentCodes: docs/rotation.md names every code of
// the rollout agent, so that an operator who reads one in its status finds
// it.
func TestRotationDocNamesTheAgentCodes(t *testing.T) {
	data, err := os.ReadFile("../../docs/rotation.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range RolloutAgent() {
		if !strings.Contains(string(data), "`"+string(c)+"`") {
			t.Errorf("docs/rotation.md does not name `%s` (%s)", c, c.Message())
		}
	}
}
