package policy

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIDLength is the longest variable id a policy resolves to, in bytes.
const MaxIDLength = 512

// idCharset describes the characters allowed in a variable id.
const idCharset = "A-Z a-z 0-9 . _ @ : + = - and /"

// idByteOK reports whether b may appear in a variable id. The set is
// deliberately conservative: ASCII letters and digits, "._@:+=-" and "/".
// Everything else (whitespace, control characters, ",%?#\", quotes, and every
// non-ASCII character, including look-alikes of "/" such as U+2215) is
// refused.
func idByteOK(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("._@:+=-/", b) >= 0
}

// checkID returns why id is not a safe variable id, or "" when it is.
func checkID(id string) string {
	if id == "" {
		return "is empty"
	}
	if len(id) > MaxIDLength {
		return fmt.Sprintf("is %d bytes long, more than %d", len(id), MaxIDLength)
	}
	if why := checkChars(id); why != "" {
		return why
	}
	if id[0] == '/' {
		return "starts with /"
	}
	for _, seg := range strings.Split(id, "/") {
		switch seg {
		case "":
			return "has an empty path segment (// or a / at the end)"
		case ".", "..":
			return fmt.Sprintf("has a %q path segment", seg)
		}
	}
	return ""
}

// checkChars returns why s holds a character a variable id cannot hold.
func checkChars(s string) string {
	_, why := badChar(s)
	return why
}

// badChar returns the byte offset of the first character a variable id
// cannot hold, and why; -1 and "" when there is none.
func badChar(s string) (int, string) {
	for i := 0; i < len(s); {
		b := s[i]
		if idByteOK(b) {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return i, "is not valid UTF-8"
		case unicode.IsControl(r):
			return i, fmt.Sprintf("contains the control character %U", r)
		case unicode.IsSpace(r):
			return i, fmt.Sprintf("contains whitespace (%U)", r)
		case strings.ContainsRune(",%?#\\", r):
			return i, fmt.Sprintf("contains %q", r)
		case r >= utf8.RuneSelf:
			return i, fmt.Sprintf("contains the non-ASCII character %U (allowed: %s)", r, idCharset)
		default:
			return i, fmt.Sprintf("contains %q (allowed: %s)", r, idCharset)
		}
	}
	return -1, ""
}

// underWithin reports whether id lies under one of the branches (each ends
// with "/", so the test is segment-aware: "apps/" admits "apps/x", not
// "apps-evil/x" nor "apps/" itself). No branches admit every id.
func underWithin(id string, within []string) bool {
	if len(within) == 0 {
		return true
	}
	for _, w := range within {
		if len(id) > len(w) && strings.HasPrefix(id, w) {
			return true
		}
	}
	return false
}
