package e2e

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The harness's own parsers: these run without Docker.

func TestParseFrames(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want frames
		err  bool
	}{
		{
			name: "ok/text, binary, missing and ready",
			out:  "CSE2E-SECRET a 68690a\nCSE2E-SECRET b 00ff\nCSE2E-MISSING c open /run/secrets/c: no such file\nCSE2E-READY\n",
			want: frames{
				values:  map[string][]byte{"a": []byte("hi\n"), "b": {0, 0xff}},
				missing: map[string]string{"c": "open /run/secrets/c: no such file"},
				ready:   true,
			},
		},
		{
			name: "ok/not ready yet",
			out:  "CSE2E-SECRET a 61\n",
			want: frames{values: map[string][]byte{"a": []byte("a")}, missing: map[string]string{}},
		},
		{name: "fail/bad hex", out: "CSE2E-SECRET a zz\n", err: true},
		{name: "fail/missing field", out: "CSE2E-SECRET a\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFrames(tt.out)
			if tt.err {
				if err == nil {
					t.Fatalf("parseFrames(%q): no error", tt.out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(frames{})); d != "" {
				t.Errorf("parseFrames (-want +got):\n%s", d)
			}
		})
	}
}

func TestLogMessage(t *testing.T) {
	tests := []struct{ name, line, want string }{
		{
			name: "ok/plugin stdout line",
			line: `time="2026-11-26T21:59:27Z" level=info msg="{\"level\":\"info\",\"rule\":\"by-label\"}" plugin=95ee`,
			want: `{"level":"info","rule":"by-label"}`,
		},
		{name: "ok/no msg field", line: `level=info plugin=95ee`, want: `level=info plugin=95ee`},
		{name: "ok/unterminated quote", line: `level=info msg="abc`, want: `level=info msg="abc`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := logMessage(tt.line); got != tt.want {
				t.Errorf("logMessage(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func FuzzParseFrames(f *testing.F) {
	f.Add("CSE2E-SECRET a 68690a\nCSE2E-READY\n")
	f.Add("CSE2E-MISSING c x\n")
	f.Fuzz(func(t *testing.T, out string) {
		got, err := parseFrames(out)
		if err == nil && got.values == nil {
			t.Fatal("nil values map without an error")
		}
	})
}

func FuzzLogMessage(f *testing.F) {
	f.Add(`time="x" level=info msg="{\"a\":1}" plugin=1`)
	f.Fuzz(func(t *testing.T, line string) {
		_ = logMessage(line)
	})
}
