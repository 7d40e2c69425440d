package policy

import (
	"fmt"
	"sort"
	"strings"
)

// phKind is a placeholder's name.
type phKind int

const (
	phSecret phKind = iota
	phSecretKey
	phStack
	phSecretLabel
	phService
	phServiceLabel
	phImage
	phNode
	phMatch
)

// placeholderNames maps the name written in a template to its kind.
var placeholderNames = map[string]phKind{
	"secret":        phSecret,
	"secret_key":    phSecretKey,
	"stack":         phStack,
	"secret_label":  phSecretLabel,
	"service":       phService,
	"service_label": phServiceLabel,
	"image":         phImage,
	"node":          phNode,
	"match":         phMatch,
}

// takesArg reports whether the placeholder is written {name:ARG}.
func (k phKind) takesArg() bool {
	return k == phSecretLabel || k == phServiceLabel || k == phMatch
}

// serviceSide reports whether the value comes from the task (service, its
// labels, image, node) rather than from the secret. Service-side values must
// expand to a single path segment.
func (k phKind) serviceSide() bool {
	return k == phService || k == phServiceLabel || k == phImage || k == phNode
}

// stackLabel is the label docker stack deploy puts on a stack's secrets and
// services.
const stackLabel = "com.docker.stack.namespace"

// placeholder is one {name} or {name:arg} in a template.
type placeholder struct {
	kind phKind
	name string // as written, e.g. "secret_label"
	arg  string
}

func (p placeholder) String() string {
	if p.kind.takesArg() {
		return "{" + p.name + ":" + p.arg + "}"
	}
	return "{" + p.name + "}"
}

// part is a literal run of text or a placeholder.
type part struct {
	lit string
	ph  *placeholder
	off int // byte offset of the part in the template
}

// template is a parsed string with placeholders.
type template struct {
	raw   string
	parts []part
}

// templateError is a problem at a byte offset inside a template.
type templateError struct {
	off int
	msg string
}

// parseTemplate splits s into literal text and placeholders. Every "{" must
// open a known placeholder; a lone "}" is an error.
func parseTemplate(s string) (template, []templateError) {
	t := template{raw: s}
	var errs []templateError
	lit, litOff := strings.Builder{}, 0
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{lit: lit.String(), off: litOff})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case '{':
			end := strings.IndexAny(s[i+1:], "{}")
			if end < 0 || s[i+1+end] == '{' {
				errs = append(errs, templateError{i, fmt.Sprintf("unclosed placeholder in %q: every { needs a matching }", s)})
				return t, errs
			}
			inner := s[i+1 : i+1+end]
			flush()
			ph, msg := parsePlaceholder(inner)
			if msg != "" {
				errs = append(errs, templateError{i, msg})
			} else {
				t.parts = append(t.parts, part{ph: &ph, off: i})
			}
			i += end + 2
			litOff = i
		case '}':
			errs = append(errs, templateError{i, fmt.Sprintf("lone } in %q: placeholders are written {name}", s)})
			i++
		default:
			if lit.Len() == 0 {
				litOff = i
			}
			lit.WriteByte(s[i])
			i++
		}
	}
	flush()
	return t, errs
}

func parsePlaceholder(inner string) (placeholder, string) {
	name, arg, hasArg := strings.Cut(inner, ":")
	kind, ok := placeholderNames[name]
	if !ok {
		msg := fmt.Sprintf("unknown placeholder {%s}", inner)
		if s := suggest(name, placeholderList()); s != "" {
			if placeholderNames[s].takesArg() {
				msg += fmt.Sprintf(" (did you mean {%s:%s}?)", s, arg)
			} else {
				msg += fmt.Sprintf(" (did you mean {%s}?)", s)
			}
		}
		return placeholder{}, msg + "; known: {secret}, {secret_key}, {stack}, {secret_label:KEY}, {service}, {service_label:KEY}, {image}, {node}, {match:NAME}"
	}
	switch {
	case kind.takesArg() && (!hasArg || arg == ""):
		return placeholder{}, fmt.Sprintf("placeholder {%s} needs an argument: write {%s:NAME}", inner, name)
	case !kind.takesArg() && hasArg:
		return placeholder{}, fmt.Sprintf("placeholder {%s} takes no argument: write {%s}", inner, name)
	}
	return placeholder{kind: kind, name: name, arg: arg}, ""
}

func placeholderList() []string {
	out := make([]string, 0, len(placeholderNames))
	for n := range placeholderNames {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// literal returns the literal text before the first placeholder.
func (t template) prefix() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ph != nil {
			break
		}
		b.WriteString(p.lit)
	}
	return b.String()
}

// placeholders returns every placeholder of the template.
func (t template) placeholders() []placeholder {
	var out []placeholder
	for _, p := range t.parts {
		if p.ph != nil {
			out = append(out, *p.ph)
		}
	}
	return out
}
