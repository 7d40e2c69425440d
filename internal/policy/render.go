package policy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	texttemplate "text/template"
	"unicode"
	"unicode/utf8"
)

// MaxSecretBytes is the size a rendered secret must stay under: Swarm
// accepts 1 byte to MaxSecretBytes-1 bytes (500 KiB).
const MaxSecretBytes = 500 * 1024

// Bundle is the resolved bundle of a Decision: the format and each member
// with its resolved variable id.
type Bundle struct {
	Format  string   // the name of one of bundleFormats
	Members []Member // sorted by name
	spec    *bundleSpec
}

// Member is one resolved member of a bundle.
type Member struct {
	Name     string // the name in the output (and in the template)
	Variable string // the resolved variable id
	Version  int    // 0 = latest
	Field    string // "" = the whole value
	Decode   string // "" or DecodeBase64
}

// Variables returns the variable ids a Decision needs fetched, in the order
// Render takes their values: the bundle's member ids sorted by member name,
// or the single variable (nil when none was resolved).
func (d Decision) Variables() []string {
	if d.Bundle != nil {
		out := make([]string, len(d.Bundle.Members))
		for i, m := range d.Bundle.Members {
			out[i] = m.Variable
		}
		return out
	}
	if d.Variable == "" {
		return nil
	}
	return []string{d.Variable}
}

// ValueError says why fetched values cannot become the secret. It never
// holds a value or part of one.
type ValueError struct {
	Member string // the bundle member at fault ("" for a single variable or the rendered whole)
	Msg    string
}

func (e *ValueError) Error() string {
	if e.Member == "" {
		return e.Msg
	}
	return fmt.Sprintf("bundle member %q: %s", e.Member, e.Msg)
}

// Render turns the fetched values into the secret handed out. For a bundle,
// values[i] is the value of Bundle.Members[i]; otherwise values holds the
// single variable's value, shaped by Field and Decode. A failure is a
// *ValueError.
func (d Decision) Render(values [][]byte) ([]byte, error) {
	if d.Bundle == nil {
		if len(values) != 1 {
			return nil, fmt.Errorf("policy: Render of a single variable got %d values", len(values))
		}
		out, err := shape{field: d.Field, decode: d.Decode}.apply(values[0])
		if err != nil {
			return nil, &ValueError{Msg: err.Error()}
		}
		return out, nil
	}
	b := d.Bundle
	if len(values) != len(b.Members) {
		return nil, fmt.Errorf("policy: Render of a %d-member bundle got %d values", len(b.Members), len(values))
	}
	f, ok := formatNamed(b.Format)
	if !ok {
		return nil, fmt.Errorf("policy: unknown bundle format %q", b.Format)
	}
	shaped := make([][]byte, len(values))
	for i, m := range b.Members {
		v, err := shape{field: m.Field, decode: m.Decode}.apply(values[i])
		if err != nil {
			return nil, &ValueError{Member: m.Name, Msg: err.Error()}
		}
		if why := textProblem(v, f); why != "" {
			return nil, &ValueError{Member: m.Name, Msg: why}
		}
		shaped[i] = v
	}
	out, err := f.render(b, shaped)
	if err != nil {
		return nil, err
	}
	switch n := len(out); {
	case n == 0:
		return nil, &ValueError{Msg: "the rendered secret is empty and Swarm needs 1 byte to 500 KiB; check the template"}
	case n >= MaxSecretBytes:
		return nil, &ValueError{Msg: fmt.Sprintf("the rendered secret is %d bytes or more and Swarm accepts less than %d (500 KiB); split the bundle", n, MaxSecretBytes)}
	}
	return out, nil
}

// apply shapes one fetched value: the field of a JSON object, then base64
// decoding. Errors name what was wrong, never the value.
func (s shape) apply(v []byte) ([]byte, error) {
	if s.field != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("the value is not a JSON object, so field %q cannot be taken from it%s; store a JSON object or remove field", s.field, jsonWhere(err))
		}
		raw, ok := obj[s.field]
		if !ok {
			return nil, fmt.Errorf("the JSON object has no top-level member %q (it has %d members); check field", s.field, len(obj))
		}
		if len(raw) > 0 && raw[0] == '"' {
			var str string
			if err := json.Unmarshal(raw, &str); err != nil {
				return nil, fmt.Errorf("member %q of the JSON object is not a valid string", s.field)
			}
			v = []byte(str)
		} else {
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				return nil, fmt.Errorf("member %q of the JSON object is not valid JSON", s.field)
			}
			v = buf.Bytes()
		}
	}
	if s.decode == DecodeBase64 {
		out, err := decodeBase64(string(v))
		if err != nil {
			return nil, err
		}
		v = out
	}
	return v, nil
}

// jsonWhere says where JSON text broke, without quoting it.
func jsonWhere(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf(" (not JSON: syntax error at byte %d)", syn.Offset)
	}
	return ""
}

// decodeBase64 decodes standard base64, padded or not; line breaks are
// ignored, as base64 tools wrap lines.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "\r\n")
	s = strings.TrimRight(s, "=")
	out, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("the value is not standard base64 (bad input at byte %d); store base64 text or remove decode", int64(ce))
		}
		return nil, errors.New("the value is not standard base64; store base64 text or remove decode")
	}
	return out, nil
}

// textProblem says why v cannot be a value of format f, or "".
func textProblem(v []byte, f bundleFormat) string {
	if f.anyBytes {
		return ""
	}
	if !utf8.Valid(v) {
		return fmt.Sprintf("the value is not valid UTF-8 text and format %s holds text only; use format template with base64, or decode the value", f.name)
	}
	if f.noNUL && bytes.IndexByte(v, 0) >= 0 {
		return "the value holds a NUL byte, which an environment variable cannot hold"
	}
	return ""
}

// renderJSON writes one compact object, members sorted by name, every value
// a JSON string, without a trailing newline.
func renderJSON(ms []Member, vals [][]byte) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, m.Name)
		b.WriteByte(':')
		writeJSONString(&b, string(vals[i]))
	}
	b.WriteByte('}')
	return b.Bytes()
}

// writeJSONString writes s (valid UTF-8) as a JSON string: '"', '\\' and
// control characters escaped, U+2028 and U+2029 as \u escapes (they end
// lines in JavaScript), everything else as it is.
func writeJSONString(b *bytes.Buffer, s string) {
	writeQuoted(b, s, func(r rune) string {
		if r < 0x20 || r == 0x2028 || r == 0x2029 {
			return fmt.Sprintf(`\u%04x`, r)
		}
		return ""
	})
}

// writeQuoted writes s between double quotes with '"', '\\', newline, tab
// and carriage return escaped as \" \\ \n \t \r, and any other rune r as
// escape(r), or as it is when that is "".
func writeQuoted(b *bytes.Buffer, s string, escape func(rune) string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if e := escape(r); e != "" {
				b.WriteString(e)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// yamlReserved are plain scalars some YAML parsers read as something other
// than a string (YAML 1.1 booleans and null): such names are quoted.
var yamlReserved = regexp.MustCompile(`(?i)\A(y|n|yes|no|on|off|true|false|null)\z`)

// renderYAML writes a mapping sorted by name, one "name: \"value\"" line per
// member: every value double-quoted with YAML escapes, so it reads back as
// the same string in any YAML parser.
func renderYAML(ms []Member, vals [][]byte) []byte {
	var b bytes.Buffer
	for i, m := range ms {
		if yamlReserved.MatchString(m.Name) {
			writeYAMLString(&b, m.Name)
		} else {
			b.WriteString(m.Name)
		}
		b.WriteString(": ")
		writeYAMLString(&b, string(vals[i]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// writeYAMLString writes s (valid UTF-8) as a YAML double-quoted scalar:
// printable characters as they are, '"' and '\\' escaped, everything else
// (control characters, line separators, the BOM, non-printing characters)
// as \xXX, \uXXXX or \UXXXXXXXX.
func writeYAMLString(b *bytes.Buffer, s string) {
	writeQuoted(b, s, func(r rune) string {
		switch {
		case r < 0x20 || r == 0x7f:
			return fmt.Sprintf(`\x%02x`, r)
		case r < utf8.RuneSelf:
			return ""
		case r == 0xfeff || r == 0x85 || r == 0x2028 || r == 0x2029 || !unicode.IsPrint(r):
			if r > 0xffff {
				return fmt.Sprintf(`\U%08x`, r)
			}
			return fmt.Sprintf(`\u%04x`, r)
		}
		return ""
	})
}

// renderDotenv writes one NAME='value' line per member, sorted by name,
// for a POSIX shell to read with `set -a; . FILE`: member names are shell
// names (memberNameRE) and every value goes through writeShellQuoted.
func renderDotenv(ms []Member, vals [][]byte) []byte {
	var b bytes.Buffer
	for i, m := range ms {
		b.WriteString(m.Name)
		b.WriteByte('=')
		writeShellQuoted(&b, vals[i])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// writeShellQuoted writes v between single quotes, and each single quote in
// it as the four bytes below (close the quotes, an escaped quote, reopen
// them):
//
//	'\''
//
// Inside single quotes a POSIX shell expands nothing ($, backquotes, \,
// newlines and every other byte stand for themselves), so the shell reads
// back exactly v; only NUL cannot be written, and textProblem refuses it
// first.
func writeShellQuoted(b *bytes.Buffer, v []byte) {
	b.WriteByte('\'')
	for {
		i := bytes.IndexByte(v, '\'')
		if i < 0 {
			break
		}
		b.Write(v[:i])
		b.WriteString(`'\''`)
		v = v[i+1:]
	}
	b.Write(v)
	b.WriteByte('\'')
}

// funcError is an error a template function returns; its text holds no
// value, so it may be shown.
type funcError struct{ msg string }

func (e *funcError) Error() string { return e.msg }

// newBundleTemplate returns an empty bundle template with the functions
// bundle templates may call and missingkey=error.
func newBundleTemplate() *texttemplate.Template {
	return texttemplate.New("bundle").Option("missingkey=error").Funcs(texttemplate.FuncMap{
		"json": func(s string) (string, error) {
			if !utf8.ValidString(s) {
				return "", &funcError{"json: the value is not valid UTF-8 text; use base64 for binary values"}
			}
			var b bytes.Buffer
			writeJSONString(&b, s)
			return b.String(), nil
		},
		"base64": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"base64decode": func(s string) (string, error) {
			out, err := decodeBase64(s)
			if err != nil {
				return "", &funcError{"base64decode: " + err.Error()}
			}
			return string(out), nil
		},
		"trim": strings.TrimSpace,
	})
}

// templateAtRE finds the position and the action text of an execution
// error: `template: bundle:1:12: executing "bundle" at <.user>: ...`.
var templateAtRE = regexp.MustCompile(`^template: [^:]*:(\d+):(\d+): executing "[^"]*" at <(.*?)>: `)

// limitedBuffer stops template output at MaxSecretBytes.
type limitedBuffer struct{ bytes.Buffer }

var errTooLarge = &funcError{"the rendered secret reached 500 KiB, Swarm's limit"}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.Len()+len(p) >= MaxSecretBytes {
		return 0, errTooLarge
	}
	return l.Buffer.Write(p)
}

// renderTemplate executes the bundle's template over the member values.
// An execution error is reported by its place in the template; its own text
// is shown only when it is one of the bundle functions' (which never quote
// a value), since text/template's messages may print the value.
func renderTemplate(t *texttemplate.Template, ms []Member, vals [][]byte) ([]byte, error) {
	data := make(map[string]string, len(ms))
	for i, m := range ms {
		data[m.Name] = string(vals[i])
	}
	var out limitedBuffer
	if err := t.Execute(&out, data); err != nil {
		where := ""
		if m := templateAtRE.FindStringSubmatch(err.Error()); m != nil {
			where = fmt.Sprintf(" at line %s, column %s, in {{%s}}", m[1], m[2], oneLine(m[3]))
		}
		var fe *funcError
		if errors.As(err, &fe) {
			return nil, &ValueError{Msg: "the bundle template failed" + where + ": " + fe.msg}
		}
		return nil, &ValueError{Msg: "the bundle template failed" + where + " (the cause is not shown, as it may quote a value); check the template with `conjur-swarm policy validate` and the values' form"}
	}
	return out.Bytes(), nil
}
