package policy

// bundleFormat is everything about one bundle format: its name, its line in
// the JSON Schema, which values it can hold and how it renders them. A new
// format is one entry here (and its renderer); the parser, Render, the
// schema's enum and description and docs/mapping.md's table are checked
// against this list.
type bundleFormat struct {
	name    string
	summary string // docs/mapping.schema.json's description of it
	// anyBytes: a value may be any bytes; otherwise it must be UTF-8 text.
	anyBytes bool
	// noNUL: a value may not hold a NUL byte (an environment variable cannot).
	noNUL  bool
	render func(b *Bundle, vals [][]byte) ([]byte, error)
}

// bundleFormats are the formats a bundle may name, in documentation order.
var bundleFormats = []bundleFormat{
	{name: FormatJSON, summary: "one compact object sorted by name",
		render: func(b *Bundle, v [][]byte) ([]byte, error) { return renderJSON(b.Members, v), nil }},
	{name: FormatYAML, summary: "a mapping of double-quoted strings",
		render: func(b *Bundle, v [][]byte) ([]byte, error) { return renderYAML(b.Members, v), nil }},
	{name: FormatDotenv, summary: "NAME='value' lines a POSIX shell sources", noNUL: true,
		render: func(b *Bundle, v [][]byte) ([]byte, error) { return renderDotenv(b.Members, v), nil }},
	{name: FormatTemplate, summary: "Go text/template over the member names", anyBytes: true,
		render: func(b *Bundle, v [][]byte) ([]byte, error) { return renderTemplate(b.spec.tmpl, b.Members, v) }},
}

// formatNamed returns the format called name.
func formatNamed(name string) (bundleFormat, bool) {
	for _, f := range bundleFormats {
		if f.name == name {
			return f, true
		}
	}
	return bundleFormat{}, false
}

// formatNames lists the formats' names, in documentation order.
func formatNames() []string {
	out := make([]string, len(bundleFormats))
	for i, f := range bundleFormats {
		out[i] = f.name
	}
	return out
}
