package conjur

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Access-token lifecycle, as fractions of the lifetime read from the payload.
const (
	refreshAtFraction = 0.80 // from here a refresh starts in the background; the token is still used
	staleAtFraction   = 0.95 // from here callers wait for a fresh token
	defaultTokenLife  = 8 * time.Minute
)

// accessToken is a Conjur access token and the local times that govern it.
// Times are measured on the local clock from when the token arrived, using
// only the lifetime (exp - iat) from the payload, so clock skew between the
// plugin and Conjur does not matter.
type accessToken struct {
	raw       []byte
	gen       uint64 // credential generation it was obtained with
	obtained  time.Time
	refreshAt time.Time
	staleAt   time.Time
	expiresAt time.Time

	// header is the Authorization header that carries raw, as
	// conjur-api-go writes it; made once, with the token.
	header string

	// api is base (the endpoint's conjurapi client) with this token already
	// parsed into it (see withToken); nil until authenticate sets both, and
	// then never changed. Copies of it send requests without parsing the
	// token again.
	base, api *apiClient
}

// parseAccessToken reads {"protected","payload","signature"} with a payload
// holding iat and (usually) exp.
func parseAccessToken(raw []byte, now time.Time) (*accessToken, error) {
	var tok struct {
		Protected string `json:"protected"`
		Payload   string `json:"payload"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil {
		return nil, errors.New("the access token is not JSON")
	}
	if tok.Payload == "" || tok.Protected == "" || tok.Signature == "" {
		return nil, errors.New("the access token lacks protected, payload or signature")
	}
	payload, err := decodeB64(tok.Payload)
	if err != nil {
		return nil, errors.New("the access token payload is not base64")
	}
	var claims struct {
		Iat *float64 `json:"iat"`
		Exp *float64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, errors.New("the access token payload is not JSON")
	}
	if claims.Iat == nil {
		return nil, errors.New("the access token payload has no iat")
	}
	life := defaultTokenLife
	if claims.Exp != nil {
		life = time.Duration((*claims.Exp - *claims.Iat) * float64(time.Second))
		if life <= 0 {
			return nil, fmt.Errorf("the access token expires before it is issued (lifetime %s)", life)
		}
	}
	frac := func(f float64) time.Time { return now.Add(time.Duration(float64(life) * f)) }
	return &accessToken{
		raw:       append([]byte(nil), raw...),
		header:    authorizationOf(raw),
		obtained:  now,
		refreshAt: frac(refreshAtFraction),
		staleAt:   frac(staleAtFraction),
		expiresAt: now.Add(life),
	}, nil
}

// authorizationOf is the Authorization header of access token raw.
func authorizationOf(raw []byte) string {
	return `Token token="` + base64.StdEncoding.EncodeToString(raw) + `"`
}

// authorization is the Authorization header that carries the token.
func (t *accessToken) authorization() string {
	if t.header == "" { // a token made without parseAccessToken
		return authorizationOf(t.raw)
	}
	return t.header
}

func decodeB64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(strings.TrimSpace(s)); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// staticToken hands an access token this package obtained to a conjurapi
// client; conjurapi then only formats the Authorization header with it.
type staticToken []byte

func (t staticToken) RefreshToken() ([]byte, error) { return t, nil }
func (t staticToken) NeedsTokenRefresh() bool       { return false }

// withToken returns a copy of base that holds raw as its access token,
// already parsed: conjurapi parses the token it is given (JSON and base64)
// before every request whose client has none in memory, so a client made
// once per token and copied per request saves that work on every fetch.
// The token in it is read-only: conjurapi replaces it (in the copy that
// holds it) only when it judges it due for refresh, which then re-reads
// the same raw token. It returns nil when conjurapi cannot parse the token;
// bind then gives every request a fresh copy of base, as before.
func withToken(base *apiClient, raw []byte) *apiClient {
	return base.withToken(raw)
}
