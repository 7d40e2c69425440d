package pluginapi

import (
	"strconv"
	"strings"
	"unicode"
)

// LogText escapes, as \uXXXX, the characters of a request value that a
// terminal or a log viewer would act on rather than show: control
// characters (C0, DEL and C1, e.g. NEL U+0085 and CSI U+009B), format
// characters (the bidirectional overrides and isolates U+202A-U+202E,
// U+2066-U+2069, marks, zero-width characters) and the line and paragraph
// separators. Other text, non-ASCII included, stays as it is.
func LogText(s string) string {
	i := strings.IndexFunc(s, unsafeInLog)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if unsafeInLog(r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeInLog(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}
