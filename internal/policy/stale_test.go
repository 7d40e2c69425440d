package policy

import (
	"strings"
	"testing"
	"time"
)

func TestStaleIfError(t *testing.T) {
	const head = "version: 1\nrules:\n  - name: r\n    match: {secret: \"*\"}\n    variable: \"apps/{secret}\"\n"
	tests := []struct {
		name    string
		extra   string
		want    time.Duration
		problem string
	}{
		{name: "ok/off by default", want: 0},
		{name: "ok/ten minutes", extra: "    stale_if_error: 10m\n", want: 10 * time.Minute},
		{name: "ok/the maximum", extra: "    stale_if_error: 24h\n", want: 24 * time.Hour},
		{name: "fail/not a duration", extra: "    stale_if_error: soon\n", problem: `stale_if_error "soon" is not a duration`},
		{name: "fail/a bare number", extra: "    stale_if_error: 600\n", problem: "stale_if_error must be a duration"},
		{name: "fail/too long", extra: "    stale_if_error: 25h\n", problem: "out of range"},
		{name: "fail/too short", extra: "    stale_if_error: 10ms\n", problem: "out of range"},
		{name: "fail/misspelt key", extra: "    stale_if_eror: 10m\n", problem: `did you mean "stale_if_error"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("m.yml", []byte(head+tt.extra))
			if tt.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("Parse error %v, want one containing %q", err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := p.Resolve(Request{SecretName: "x"})
			if !d.Allow || d.StaleIfError != tt.want {
				t.Errorf("Decision allow %t stale_if_error %s, want allow and %s", d.Allow, d.StaleIfError, tt.want)
			}
		})
	}
}
