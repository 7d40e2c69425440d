package policy

import (
	"regexp"
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		name, glob, value string
		match             bool
	}{
		{"ok/star-crosses-slash", "apps/*", "apps/a/b", true},
		{"ok/star-matches-empty", "apps/*", "apps/", true},
		{"ok/star-matches-newline", "*", "a\nb", true},
		{"ok/question-one-rune", "a?c", "a∕c", true},
		{"fail/question-not-two", "a?c", "abbc", false},
		{"ok/class-range", "v[0-9]", "v7", true},
		{"fail/class-negated", "v[^0-9]", "v7", false},
		{"ok/class-bang-negates", "v[!0-9]", "vx", true},
		{"ok/escaped-star-is-literal", `a\*`, "a*", true},
		{"fail/escaped-star-not-wildcard", `a\*`, "ab", false},
		{"ok/regexp-metacharacters-literal", "a.b+(c)", "a.b+(c)", true},
		{"fail/dot-is-literal", "a.b", "axb", false},
		{"fail/whole-value-only", "web", "web-evil", false},
		{"ok/class-with-escaped-bracket", `[\]a]`, "]", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expr, err := globToRegexp(tc.glob)
			if err != nil {
				t.Fatal(err)
			}
			if got := regexp.MustCompile(expr).MatchString(tc.value); got != tc.match {
				t.Errorf("glob %q on %q = %v, want %v (regexp %s)", tc.glob, tc.value, got, tc.match, expr)
			}
		})
	}
	for _, tc := range []struct{ name, glob, err string }{
		{"fail/unclosed-class", "[a-", "unclosed ["},
		{"fail/empty-class", "[]", "empty [] class"},
		{"fail/reversed-range", "[z-a]", "reversed range"},
		{"fail/trailing-backslash", `a\`, "lone \\"},
		{"fail/invalid-utf8", "a\xff", "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := globToRegexp(tc.glob); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("globToRegexp(%q) error %v, want %q", tc.glob, err, tc.err)
			}
		})
	}
}

func TestGlobQuoteMatchesOnlyItself(t *testing.T) {
	for _, v := range []string{"*", "a?b", "[x]", `\`, "{stack}", "apps/*/x", "ok"} {
		expr, err := globToRegexp(globQuote(v))
		if err != nil {
			t.Fatalf("quoted %q: %v", v, err)
		}
		re := regexp.MustCompile(expr)
		if !re.MatchString(v) || re.MatchString(v+"x") || (v != "ok" && re.MatchString("ok")) {
			t.Errorf("quoted %q does not match exactly itself", v)
		}
	}
}

// A value put inside a [...] class of an allow glob must stand for its own
// characters only: "^x" must not negate the class, "a-z" must not become a
// range (either would let other images through).
func TestAllowValueInsideClassIsLiteral(t *testing.T) {
	p := mustParse(t, `version: 1
rules:
  - name: r
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "apps/{secret_label:conjur.variable}"
    allow:
      image: ["reg/[{secret_label:img}]*"]
`)
	for _, tc := range []struct{ img, image string }{
		{"^x", "reg/q"}, {"!x", "reg/q"}, {"a-z", "reg/q"}, {"a-z", "reg/b"},
	} {
		d := p.Resolve(Request{SecretName: "s", SecretLabels: map[string]string{"conjur.variable": "a", "img": tc.img}, Image: tc.image})
		if d.Allow {
			t.Errorf("label img=%q allowed image %q: %s", tc.img, tc.image, d.Reason)
		}
	}
	for _, tc := range []struct{ img, image string }{{"^x", "reg/^"}, {"a-z", "reg/-"}, {"a-z", "reg/z1"}} {
		if d := p.Resolve(Request{SecretName: "s", SecretLabels: map[string]string{"conjur.variable": "a", "img": tc.img}, Image: tc.image}); !d.Allow {
			t.Errorf("label img=%q denied image %q: %s", tc.img, tc.image, d.Reason)
		}
	}
}
