package conjurdev

import (
	"strings"
	"unicode"
)

// Conjur searches resources (and role memberships) with PostgreSQL full
// text search: the resource's identifier (with '.', '/' and '-' turned into
// spaces), its annotations and its kind become an English tsvector, and the
// search string becomes plainto_tsquery('english', ...) with the same three
// characters turned into spaces. A resource matches when it holds every
// word of the query.
//
// The dev server has no PostgreSQL. It splits both sides into words the
// way the parser does for plain text (runs of letters and digits,
// lower-cased), folds English plural endings, and requires every query
// word. Conjur's full stemmer and its stop-word list are not reproduced:
// docs/dev-server.md lists the difference.

// searchQuery is a parsed search string: the words a match must hold.
type searchQuery []string

func parseSearch(q string) searchQuery {
	return searchWords(q)
}

// matches reports whether res holds every word of q. An empty query (only
// separators) matches nothing, as an empty tsquery does.
func (q searchQuery) matches(res *resource) bool {
	if len(q) == 0 || res == nil {
		return false
	}
	have := map[string]bool{}
	add := func(text string) {
		for _, w := range searchWords(text) {
			have[w] = true
		}
	}
	add(res.ident)
	add(res.kind)
	for _, a := range res.annotations {
		add(a.value)
	}
	for _, w := range q {
		if !have[w] {
			return false
		}
	}
	return true
}

// searchWords splits text into lower-cased words of letters and digits,
// each with its English plural ending folded.
func searchWords(text string) []string {
	f := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	for i, w := range f {
		f[i] = foldPlural(w)
	}
	return f
}

// foldPlural is roughly step 1a of the snowball English stemmer that
// PostgreSQL uses: "passwords" and "password" become the same word,
// "classes" keeps its "ss", "status" its "us".
func foldPlural(w string) string {
	switch {
	case strings.HasSuffix(w, "sses"):
		return w[:len(w)-2]
	case strings.HasSuffix(w, "ies"):
		return w[:len(w)-2]
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"):
		return w
	case strings.HasSuffix(w, "s") && len(w) > 2:
		return w[:len(w)-1]
	}
	return w
}
