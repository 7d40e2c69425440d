package policy

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Glob syntax (documented in docs/mapping.md):
//
//	*      any run of characters, including "/" and none at all
//	?      exactly one character
//	[abc]  one of the listed characters; ranges a-z; [^...] or [!...] negates
//	\c     the character c itself
//
// A glob always matches the whole value. Globs are translated to RE2, so
// matching takes linear time whatever the input.

// globToRegexp translates a glob to an anchored RE2 expression.
func globToRegexp(glob string) (string, error) {
	var b strings.Builder
	b.WriteString(`\A(?s:`)
	for i := 0; i < len(glob); {
		r, n := utf8.DecodeRuneInString(glob[i:])
		switch r {
		case '*':
			b.WriteString(`.*`)
			i += n
		case '?':
			b.WriteString(`.`)
			i += n
		case '\\':
			i += n
			if i >= len(glob) {
				return "", fmt.Errorf("glob %q ends with a lone \\ (write \\\\ for a backslash)", glob)
			}
			r, n = utf8.DecodeRuneInString(glob[i:])
			b.WriteString(regexp.QuoteMeta(string(r)))
			i += n
		case '[':
			end, class, err := globClass(glob, i)
			if err != nil {
				return "", err
			}
			b.WriteString(class)
			i = end
		default:
			if r == utf8.RuneError && n == 1 {
				return "", fmt.Errorf("glob %q is not valid UTF-8", glob)
			}
			b.WriteString(regexp.QuoteMeta(string(r)))
			i += n
		}
	}
	b.WriteString(`)\z`)
	return b.String(), nil
}

// globClass translates the character class starting at glob[start] ('[') and
// returns the index just past its closing ']'.
func globClass(glob string, start int) (int, string, error) {
	var b strings.Builder
	b.WriteByte('[')
	i := start + 1
	if i < len(glob) && (glob[i] == '^' || glob[i] == '!') {
		b.WriteByte('^')
		i++
	}
	items := 0
	next := func() (rune, bool, error) { // one class character, unescaping \c
		if i >= len(glob) {
			return 0, false, fmt.Errorf("glob %q has an unclosed [", glob)
		}
		r, n := utf8.DecodeRuneInString(glob[i:])
		if r == '\\' {
			i += n
			if i >= len(glob) {
				return 0, false, fmt.Errorf("glob %q has an unclosed [", glob)
			}
			r, n = utf8.DecodeRuneInString(glob[i:])
			i += n
			return r, true, nil
		}
		if r == utf8.RuneError && n == 1 {
			return 0, false, fmt.Errorf("glob %q is not valid UTF-8", glob)
		}
		i += n
		return r, false, nil
	}
	for {
		if i >= len(glob) {
			return 0, "", fmt.Errorf("glob %q has an unclosed [", glob)
		}
		if glob[i] == ']' {
			if items == 0 {
				return 0, "", fmt.Errorf("glob %q has an empty [] class", glob)
			}
			i++
			b.WriteByte(']')
			return i, b.String(), nil
		}
		lo, _, err := next()
		if err != nil {
			return 0, "", err
		}
		hi := lo
		if i+1 < len(glob) && glob[i] == '-' && glob[i+1] != ']' {
			i++
			if hi, _, err = next(); err != nil {
				return 0, "", err
			}
			if hi < lo {
				return 0, "", fmt.Errorf("glob %q has a reversed range %c-%c", glob, lo, hi)
			}
		}
		fmt.Fprintf(&b, `\x{%x}`, lo)
		if hi != lo {
			fmt.Fprintf(&b, `-\x{%x}`, hi)
		}
		items++
	}
}

// globQuote escapes s so that, as part of a glob, it matches only itself,
// also inside a [...] class (where - makes a range and a leading ^ or !
// negates).
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '{', '}', '-', '^', '!':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// parseGlobTemplate is parseTemplate for globs: "\c" is kept as an escape,
// so \{ and \} are literal braces.
func parseGlobTemplate(s string) (template, []templateError) {
	var masked strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '}' || s[i+1] == '\\') {
			masked.WriteString("\x00\x00")
			i++
			continue
		}
		masked.WriteByte(s[i])
	}
	t, errs := parseTemplate(masked.String())
	// Put the escaped text back into the literal parts.
	for i := range t.parts {
		if t.parts[i].ph == nil {
			off := t.parts[i].off
			t.parts[i].lit = s[off : off+len(t.parts[i].lit)]
		}
	}
	t.raw = s
	return t, errs
}

// literalOnly reports whether t's literal parts hold no glob syntax.
func literalOnly(t template) bool {
	for _, p := range t.parts {
		if p.ph == nil && strings.ContainsAny(p.lit, `*?[]\`) {
			return false
		}
	}
	return true
}

// compileGlob builds the glob from t, with each placeholder replaced by
// value(ph) quoted, and compiles it.
func compileGlob(t template, value func(placeholder) string) (*regexp.Regexp, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ph != nil {
			b.WriteString(globQuote(value(*p.ph)))
		} else {
			b.WriteString(p.lit)
		}
	}
	expr, err := globToRegexp(b.String())
	if err != nil {
		return nil, err
	}
	return regexp.Compile(expr)
}
