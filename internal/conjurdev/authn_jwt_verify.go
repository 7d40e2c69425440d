package conjurdev

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwtAlgorithms are the only algorithms Conjur 1.24 accepts
// (SUPPORTED_ALGORITHMS in authn_jwt.rb).
var jwtAlgorithms = []string{"RS256", "RS384", "RS512"}

// jwtShaped is DecodedCredentials' JWT_REGEX,
// \A[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+\z: three non-empty
// parts of base64url characters and '=', joined by dots. (Matching the
// regexp cost a sixth of an authn-jwt login.)
func jwtShaped(s string) bool {
	dots, run := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if run == 0 {
				return false
			}
			dots, run = dots+1, 0
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '=':
			run++
		default:
			return false
		}
	}
	return dots == 2 && run > 0
}

// jwtFromBody is DecodedCredentials: the form field jwt (the last one
// wins), missing or empty 400, not of a JWT's shape 401.
func jwtFromBody(body []byte) (string, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "", authnErr("ArgumentError", "", "invalid %%-encoding in the request body")
	}
	vals := form["jwt"]
	if len(vals) == 0 || vals[len(vals)-1] == "" {
		return "", errMissingParam("jwt")
	}
	tok := trimRubySpace(vals[len(vals)-1])
	if !jwtShaped(tok) {
		return "", authnErr(errJwtToken+"RequestBodyMissingJWTToken", "CONJ00077E", "The request body does not contain JWT token")
	}
	return tok, nil
}

// trimRubySpace is Ruby's String#strip (ASCII whitespace and NUL).
func trimRubySpace(s string) string {
	isSpace := func(c byte) bool {
		return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == 0
	}
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// errDecode is Conjur's TokenDecodeFailed around the error the ruby-jwt
// gem (2.7.1, Conjur 1.24's) raises, named by its class.
func errDecode(class, msg string) *authnError {
	return authnErr(errJwtToken+"TokenDecodeFailed", "CONJ00035E",
		"Failed to decode token (3rdPartyError ='#<JWT::%s: %s>')", class, msg)
}

// jwtCheck is what a token is verified against.
type jwtCheck struct {
	keys     map[string]*rsa.PublicKey
	issuer   string // "" when not configured
	audience string // "" when not configured
	now      time.Time
	skipIat  bool // OAuth providers other than Google: iat is not verified
}

// verifyJWT is ValidateAndDecodeToken: the signature with a key found by
// the header's kid (no kid is refused), then exp and nbf, then the
// mandatory claims (exp always, aud with an audience, iss with an issuer),
// then iss, iat (not in the future, no leeway) and aud.
func verifyJWT(raw string, c jwtCheck) (map[string]any, error) {
	claims, err := verifySignature(raw, c.keys)
	if err != nil {
		return nil, err
	}
	if err := checkTimes(claims, c.now); err != nil {
		return nil, err
	}
	if err := checkMandatory(claims, c); err != nil {
		return nil, err
	}
	return claims, checkClaims(claims, c)
}

// verifySignature decodes raw and verifies its signature with the key its
// kid names, as ruby-jwt does with a JWKS.
func verifySignature(raw string, keys map[string]*rsa.PublicKey) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	var refusal *authnError
	_, err := jwt.NewParser(jwt.WithoutClaimsValidation()).ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if refusal = keyRefusal(t, keys); refusal != nil {
			return nil, refusal
		}
		return keys[t.Header["kid"].(string)], nil
	})
	switch {
	case refusal != nil:
		return nil, refusal
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, errDecode("VerificationError", "Signature verification failed")
	case err != nil:
		return nil, errDecode("DecodeError", "Invalid segment encoding")
	}
	return claims, nil
}

// keyRefusal checks the header as ruby-jwt does before it verifies: an
// accepted algorithm, a kid, a key with that kid.
func keyRefusal(t *jwt.Token, keys map[string]*rsa.PublicKey) *authnError {
	alg, _ := t.Header["alg"].(string)
	if alg == "" {
		return errDecode("IncorrectAlgorithm", "Token is missing alg header")
	}
	if !slices.Contains(jwtAlgorithms, alg) {
		return errDecode("IncorrectAlgorithm", "Expected a different algorithm")
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return errDecode("DecodeError", "No key id (kid) found from token headers")
	}
	if _, ok := keys[kid]; !ok {
		return errDecode("DecodeError", "Could not find public key for kid "+kid)
	}
	return nil
}

// checkTimes is ruby-jwt's default verification: exp (when present) must
// be after now, nbf (when present) not after now; no leeway.
func checkTimes(claims jwt.MapClaims, now time.Time) error {
	if exp, ok := claims["exp"]; ok && jsonToI(exp) <= now.Unix() {
		return errTokenExpired
	}
	if nbf, ok := claims["nbf"]; ok && jsonToI(nbf) > now.Unix() {
		return errDecode("ImmatureSignature", "Signature nbf has not been reached")
	}
	return nil
}

// jsonToI is Ruby's #to_i on a JSON value: numbers truncated, anything
// else 0.
func jsonToI(v any) int64 {
	if f, ok := v.(float64); ok {
		return int64(math.Trunc(f))
	}
	return 0
}

// checkMandatory is FetchJwtClaimsToValidate and ValidateAndDecodeToken's
// blank check: exp always, aud when an audience is configured, iss when an
// issuer is.
func checkMandatory(claims jwt.MapClaims, c jwtCheck) error {
	need := []string{"exp"}
	if c.audience != "" {
		need = append(need, "aud")
	}
	if c.issuer != "" {
		need = append(need, "iss")
	}
	for _, name := range need {
		if rubyBlankValue(claims[name]) {
			return authnErr(errJWT+"MissingMandatoryClaim", "CONJ00091E",
				"Failed to validate token: mandatory claim '%s' is missing.", name)
		}
	}
	return nil
}

// rubyBlankValue is Ruby's #blank? on a JSON value.
func rubyBlankValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return rubyBlank(x)
	case bool:
		return !x
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// checkClaims is the second decode: iss equal to the issuer, iat a number
// not in the future, aud (a string or a list) holding the audience.
func checkClaims(claims jwt.MapClaims, c jwtCheck) error {
	if c.issuer != "" && claims["iss"] != c.issuer {
		return errDecode("InvalidIssuerError", fmt.Sprintf("Invalid issuer. Expected %s, received %v", rubyInspect([]string{c.issuer}), claims["iss"]))
	}
	if iat, ok := claims["iat"]; ok && !c.skipIat {
		f, isNum := iat.(float64)
		if !isNum || f > float64(c.now.UnixNano())/1e9 {
			return errDecode("InvalidIatError", "Invalid iat")
		}
	}
	if c.audience == "" {
		return nil
	}
	var auds []any
	switch a := claims["aud"].(type) {
	case []any:
		auds = a
	default:
		auds = []any{a}
	}
	if !slices.Contains(auds, any(c.audience)) {
		return errDecode("InvalidAudError", fmt.Sprintf("Invalid audience. Expected %s, received %v", c.audience, claims["aud"]))
	}
	return nil
}
