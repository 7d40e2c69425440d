package policy

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// checkBundleDecision asserts the invariants of a decision with a bundle:
// every member id obeys the safety rules and within, stays under its
// template's prefix, and took no service-side value holding a /; members
// are sorted by unique name.
func checkBundleDecision(t *testing.T, p *Policy, req Request, d Decision) {
	t.Helper()
	var r *rule
	for _, x := range p.rules {
		if x.name == d.Rule {
			r = x
		}
	}
	if r == nil || r.bundle == nil {
		t.Fatalf("decision has a bundle but rule %q has none", d.Rule)
	}
	ms := d.Bundle.Members
	if len(ms) != len(r.bundle.members) || d.Bundle.Format != r.bundle.format {
		t.Fatalf("bundle %+v does not match rule %q", d.Bundle, d.Rule)
	}
	for i, m := range ms {
		if i > 0 && ms[i-1].Name >= m.Name {
			t.Fatalf("members not sorted by unique name: %q then %q", ms[i-1].Name, m.Name)
		}
		checkSafeID(t, p, m.Variable)
		spec := r.bundle.members[i]
		if !strings.HasPrefix(m.Variable, spec.variable.prefix()) {
			t.Fatalf("member %q: id %q left its template's prefix %q", m.Name, m.Variable, spec.variable.prefix())
		}
		for _, ph := range spec.variable.placeholders() {
			if ph.kind.serviceSide() {
				pv, _ := lookup(ph, &req, nil)
				if v := pv.text; strings.Contains(v, "/") {
					t.Fatalf("member %q: allowed %q with %s = %q, which holds a /", m.Name, m.Variable, ph, pv.text)
				}
			}
		}
		if m.Version < 0 {
			t.Fatalf("member %q: negative version", m.Name)
		}
	}
	if got := d.Variables(); !slices.Equal(got, memberIDs(ms)) {
		t.Fatalf("Variables() = %v, want the member ids", got)
	}
}

func memberIDs(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Variable
	}
	return out
}

// FuzzRenderRoundTrip checks that json, yaml and dotenv output always reads
// back to exactly the fetched values (dotenv: sourced by dash and bash too), and that a value the format cannot
// hold is refused naming its member, never quoted.
func FuzzRenderRoundTrip(f *testing.F) {
	for _, tc := range renderCases {
		if len(tc.values) >= 2 {
			f.Add(tc.values[0], tc.values[1])
		}
	}
	f.Add("plain", "with \"quotes\" and $HOME\nand\r\t")
	f.Add("ünïcödé \u2028\u2029\ufeff\u0085", "\x00\x01\x7f\x9b")
	f.Add("\xff\xfe", "ok")
	f.Add("'single' # not a comment: - [x] {y} & * ! | >", "  leading and trailing  ")
	f.Add("`touch pwned`$(touch pwned)${x:-y}\\", "'\\''\n\n")
	f.Add("'", "\\")
	f.Fuzz(func(t *testing.T, a, b string) {
		ms := []Member{{Name: "a"}, {Name: "on"}}
		vals := [][]byte{[]byte(a), []byte(b)}
		for _, format := range slices.Sorted(maps.Keys(readers)) {
			d := Decision{Bundle: &Bundle{Format: format, Members: ms}}
			out, err := d.Render(vals)
			if err != nil {
				ve, ok := err.(*ValueError)
				if !ok {
					t.Fatalf("%s: error %T %v is not a ValueError", format, err, err)
				}
				// The message is one of the fixed texts, so it quotes no
				// value (a value may be a word of them: "with").
				if (ve.Member != "a" && ve.Member != "on") || !slices.Contains([]string{
					"the value is not valid UTF-8 text and format " + format + " holds text only; use format template with base64, or decode the value",
					"the value holds a NUL byte, which an environment variable cannot hold",
				}, ve.Msg) {
					t.Fatalf("%s: unexpected error (quoting a value?): %v", format, err)
				}
				bad := !utf8.ValidString(a) || !utf8.ValidString(b) ||
					format == FormatDotenv && (strings.Contains(a, "\x00") || strings.Contains(b, "\x00"))
				if !bad {
					t.Fatalf("%s: refused text values: %v", format, err)
				}
				continue
			}
			got := readBack(t, format, out)
			if got["a"] != a || got["on"] != b || len(got) != 2 {
				t.Fatalf("%s: %q reads back as %q, want a=%q on=%q", format, out, got, a, b)
			}
		}
	})
}

// readers parse rendered output of each text format with a reader
// independent of the writer (TestBundleFormatsAreOneList: one per format).
var readers = map[string]func(t *testing.T, out []byte) map[string]string{
	FormatJSON: func(t *testing.T, out []byte) map[string]string {
		got := map[string]string{}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("json output %q does not parse: %v", out, err)
		}
		return got
	},
	FormatYAML: func(t *testing.T, out []byte) map[string]string {
		got := map[string]string{}
		if err := yaml.Unmarshal(out, &got); err != nil {
			t.Fatalf("yaml output %q does not parse: %v", out, err)
		}
		return got
	},
	FormatDotenv: func(t *testing.T, out []byte) map[string]string {
		got := parseDotenv(t, string(out))
		for sh, vals := range sourceDotenv(t, out, slices.Sorted(maps.Keys(got))) {
			if !maps.Equal(vals, got) {
				t.Fatalf("dotenv %q: %s reads %q, the dotenv grammar %q", out, sh, vals, got)
			}
		}
		return got
	},
}

// readBack parses rendered output with format's reader.
func readBack(t *testing.T, format string, out []byte) map[string]string {
	t.Helper()
	return readers[format](t, out)
}
