// Package credential is the Conjur credential the plugin authenticates with
// (an API key or a JWT, with where it may be sent) and its JSON document,
// shared by the handoff (internal/pluginapi), the Conjur client
// (internal/conjur) and the bootstrap agent. It imports no other package of
// the project but redact.
package credential

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Credential is what the plugin authenticates with: a login and its API key,
// or a JWT for authn-jwt. The secrets are redact.Strings: a Credential never
// prints, logs or encodes them; String and MarshalLogObject name it by its
// fingerprint instead.
type Credential struct {
	Login  string
	APIKey redact.String
	JWT    redact.String
	// ApplianceURLs are the only Conjur URLs this credential may be sent to
	// (a handoff's appliance_url); empty: any URL of the plugin's (the
	// credential of the plugin's own settings).
	ApplianceURLs []string
}

// MaxSize bounds a credential document (a JWT can be a few KiB).
const MaxSize = 64 << 10

// Parse reads the handoff / credential-file JSON:
// {"login": "host/...", "api_key": "..."} or {"jwt": "..."}, each of which
// may also carry "account" and "appliance_url" (strings, not used here).
// Its errors never echo the input.
func Parse(data []byte) (Credential, error) {
	if len(data) > MaxSize {
		return Credential{}, fmt.Errorf("credential is %d bytes, more than the %d allowed: give {\"login\":..,\"api_key\":..} or {\"jwt\":..}", len(data), MaxSize)
	}
	var doc struct {
		Login  *string `json:"login"`
		APIKey *string `json:"api_key"`
		JWT    *string `json:"jwt"`
		// Where the credential belongs: the bootstrap agent and the
		// plugin's handoff endpoint check them (pluginapi.ParseHandoff); the
		// client itself does not use them.
		Account      *string `json:"account"`
		ApplianceURL *string `json:"appliance_url"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return Credential{}, fmt.Errorf("credential is not valid JSON (syntax error at byte %d): give {\"login\":..,\"api_key\":..} or {\"jwt\":..}", syn.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return Credential{}, errors.New("credential JSON ends early (truncated): give the whole {\"login\":..,\"api_key\":..} or {\"jwt\":..}, it is not valid JSON")
		case errors.As(err, &typ) && typ.Field != "":
			return Credential{}, fmt.Errorf("credential field %q must be a string", typ.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return Credential{}, errors.New("credential has a field other than login, api_key, jwt, account and appliance_url: remove it")
		default:
			return Credential{}, errors.New("credential is not a JSON object: give {\"login\":..,\"api_key\":..} or {\"jwt\":..}")
		}
	}
	if dec.More() {
		return Credential{}, errors.New("credential has data after the JSON object: give exactly one object")
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	c := Credential{Login: str(doc.Login), APIKey: redact.String(str(doc.APIKey)), JWT: redact.String(str(doc.JWT))}
	switch {
	case c.JWT != "" && (c.Login != "" || c.APIKey != ""):
		return Credential{}, errors.New("credential mixes jwt with login/api_key: give one form only")
	case c.JWT != "":
		if jwt := c.JWT.Reveal(); strings.Count(jwt, ".") != 2 || HasSpaceOrControl(jwt) {
			return Credential{}, errors.New("credential jwt is not a compact JWT (header.payload.signature)")
		}
	case c.Login == "" && c.APIKey == "":
		return Credential{}, errors.New("credential is empty: give {\"login\":..,\"api_key\":..} or {\"jwt\":..}")
	case c.Login == "":
		return Credential{}, errors.New("credential has an api_key but no login: add \"login\" (e.g. host/swarm/conjur-plugin)")
	case c.APIKey == "":
		return Credential{}, errors.New("credential has a login but no api_key: add \"api_key\"")
	}
	if HasSpaceOrControl(c.APIKey.Reveal()) {
		return Credential{}, errors.New("credential api_key contains whitespace or control characters: give the key exactly as Conjur issued it")
	}
	if hasControl(c.Login) {
		return Credential{}, errors.New("credential login contains control characters")
	}
	return c, nil
}

// ParseFile accepts credential JSON or bare API-key text (a credential
// file); a bare key belongs to defaultLogin.
func ParseFile(data []byte, defaultLogin string) (Credential, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return Credential{}, errors.New("the file is empty")
	}
	if trimmed[0] == '{' {
		return Parse(trimmed)
	}
	key := string(trimmed)
	if len(key) > MaxSize || HasSpaceOrControl(key) {
		return Credential{}, errors.New("the file is neither credential JSON nor a single API key")
	}
	if defaultLogin == "" {
		return Credential{}, errors.New("the file holds a bare API key but CONJUR_AUTHN_LOGIN is not set")
	}
	return Credential{Login: defaultLogin, APIKey: redact.String(key)}, nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// HasSpaceOrControl reports whether s holds whitespace or a control
// character (never in a key, a JWT or an id).
func HasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
}

// MayGoTo reports whether the credential may be sent to the appliance URL
// u: it names no URLs, or u is one of them (compared in canonical form).
func (c Credential) MayGoTo(u string) bool {
	if len(c.ApplianceURLs) == 0 {
		return true
	}
	cu := CanonicalURL(u)
	return cu != "" && slices.ContainsFunc(c.ApplianceURLs, func(a string) bool { return CanonicalURL(a) == cu })
}

// CanonicalURL returns an appliance URL in canonical form, or "" when raw is
// not an absolute http(s) URL with a host and without user info, query or
// fragment: scheme and host in lower case, no default port, no trailing
// slash.
func CanonicalURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if (scheme != "https" && scheme != "http") || host == "" {
		return ""
	}
	if port := u.Port(); port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6 literal without a port
	}
	return scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/")
}

// IsZero reports whether no credential is held.
func (c Credential) IsZero() bool { return c.APIKey == "" && c.JWT == "" }

// Fingerprint is a short stable hex string (sha256 of the login and the
// secret) that identifies a credential without revealing it; "" for none.
func (c Credential) Fingerprint() string {
	if c.IsZero() {
		return ""
	}
	h := sha256.New()
	if c.JWT != "" {
		h.Write([]byte("jwt\x00"))
		h.Write([]byte(c.JWT))
	} else {
		h.Write([]byte(c.Login))
		h.Write([]byte{0})
		h.Write([]byte(c.APIKey))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (c Credential) kind() string {
	switch {
	case c.JWT != "":
		return "jwt"
	case c.APIKey != "":
		return "api_key"
	}
	return "none"
}

// String shows the login, the kind and the fingerprint, never the secret.
func (c Credential) String() string {
	return fmt.Sprintf("credential.Credential{login=%q kind=%s fingerprint=%s}", c.Login, c.kind(), c.Fingerprint())
}

// MarshalLogObject logs the login, the kind and the fingerprint.
func (c Credential) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("login", c.Login)
	enc.AddString("kind", c.kind())
	enc.AddString("fingerprint", c.Fingerprint())
	return nil
}
