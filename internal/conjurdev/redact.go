package conjurdev

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap/zapcore"
)

// Types that hold credentials (Options: the admin API key; LoadResult: the
// created roles' API keys; JWTIssuer: a private key) redact themselves in
// every fmt verb, in zap and in JSON. Code that needs a key reads the field.

const redacted = "[REDACTED]"

func (o Options) String() string {
	key := ""
	if o.AdminAPIKey != "" {
		key = redacted
	}
	return fmt.Sprintf("conjurdev.Options{Account:%q AdminAPIKey:%q TokenTTL:%s Authenticators:%q}",
		o.Account, key, o.TokenTTL, o.Authenticators)
}

// Format prints the redacted form for every verb.
func (o Options) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, o.String()) }

// GoString is the redacted form for %#v.
func (o Options) GoString() string { return o.String() }

// MarshalLogObject logs the options without the admin key.
func (o Options) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("account", o.Account)
	enc.AddBool("admin_api_key_set", o.AdminAPIKey != "")
	enc.AddDuration("token_ttl", o.TokenTTL)
	return nil
}

// MarshalJSON omits the admin key.
func (o Options) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"account": o.Account, "admin_api_key_set": o.AdminAPIKey != "",
		"token_ttl": o.TokenTTL.String(), "authenticators": o.Authenticators,
	})
}

func (r LoadResult) roles() []string {
	ids := make([]string, 0, len(r.CreatedRoles))
	for id := range r.CreatedRoles {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (r LoadResult) String() string {
	return fmt.Sprintf("conjurdev.LoadResult{Version:%d CreatedRoles:[%s] (API keys redacted)}",
		r.Version, strings.Join(r.roles(), " "))
}

// Format prints the redacted form for every verb.
func (r LoadResult) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, r.String()) }

// GoString is the redacted form for %#v.
func (r LoadResult) GoString() string { return r.String() }

// MarshalLogObject logs the version and the created role ids, not keys.
func (r LoadResult) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddInt("version", r.Version)
	return enc.AddArray("created_roles", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, id := range r.roles() {
			a.AppendString(id)
		}
		return nil
	}))
}

// MarshalJSON lists the created role ids without their keys.
func (r LoadResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"version": r.Version, "created_roles": r.roles()})
}

func (j *JWTIssuer) String() string {
	if j == nil {
		return "conjurdev.JWTIssuer(nil)"
	}
	return fmt.Sprintf("conjurdev.JWTIssuer{Issuer:%q Kid:%q Key:%s}", j.issuer, j.kid, redacted)
}

// Format prints the redacted form for every verb.
func (j *JWTIssuer) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, j.String()) }

// GoString is the redacted form for %#v.
func (j *JWTIssuer) GoString() string { return j.String() }
