package conjur

import (
	"encoding/json"
)

// tokenSubject returns the login a Conjur access token was issued to (its
// payload's sub claim), or "" when the token does not say.
func tokenSubject(raw []byte) string {
	var tok struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(raw, &tok) != nil {
		return ""
	}
	payload, err := decodeB64(tok.Payload)
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}
