// Package redact holds secrets in struct fields that never print them.
//
// A field of type String or Bytes prints [REDACTED] in every fmt verb
// (%v, %+v, %#v, %s, %q, %x, ...), in encoding/json, as text (YAML and other
// encoders that use encoding.TextMarshaler) and in zap (zap.Any, zap.Stringer
// and zap.Reflect), so a struct that holds one prints normally and a new
// secret field is safe by default. An empty value prints as nothing, so logs
// still say whether a secret is set.
//
// Code that needs the secret converts it explicitly: string(s), []byte(b),
// or s.Reveal(). Keep such fields exported: fmt prints an unexported field
// through reflection, without calling its methods.
package redact

import (
	"fmt"
	"io"
)

// Marker is what a set secret prints as.
const Marker = "[REDACTED]"

// String is a secret text: an API key, a token, a private key in PEM.
type String string

// Reveal returns the secret for the one place that must use it.
func (s String) Reveal() string { return string(s) }

// String returns [REDACTED], or "" when s is empty.
func (s String) String() string { return mark(len(s)) }

// GoString redacts %#v like String.
func (s String) GoString() string { return s.String() }

// Format writes the redacted form for every verb.
func (s String) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalText writes the redacted form.
func (s String) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON writes the redacted form as a JSON string.
func (s String) MarshalJSON() ([]byte, error) { return quoted(len(s)), nil }

// Bytes is a secret value held as bytes: a Conjur variable's value.
type Bytes []byte

// Reveal returns the secret for the one place that must use it.
func (b Bytes) Reveal() []byte { return b }

// String returns [REDACTED], or "" when b is empty.
func (b Bytes) String() string { return mark(len(b)) }

// GoString redacts %#v like String.
func (b Bytes) GoString() string { return b.String() }

// Format writes the redacted form for every verb.
func (b Bytes) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, b.String()) }

// MarshalText writes the redacted form.
func (b Bytes) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// MarshalJSON writes the redacted form as a JSON string (not base64).
func (b Bytes) MarshalJSON() ([]byte, error) { return quoted(len(b)), nil }

func mark(n int) string {
	if n == 0 {
		return ""
	}
	return Marker
}

func quoted(n int) []byte { return []byte(`"` + mark(n) + `"`) }
