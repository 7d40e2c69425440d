package conjurdev

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"regexp"
	"slices"
	"strings"
)

// authn-jwt is configured in policy as Conjur 1.24 does it: a webservice
// conjur/authn-jwt/<service-id> and variables below it. Each rule below
// follows Conjur's app/domain/authentication/authn_jwt (tag v1.24.0); the
// file names there are given where a rule is checked.

const jwtPrefix = "conjur/authn-jwt/"

// The variables Conjur reads (authn_jwt.rb).
const (
	jwtVarJWKSURI       = "jwks-uri"
	jwtVarPublicKeys    = "public-keys"
	jwtVarProviderURI   = "provider-uri"
	jwtVarCACert        = "ca-cert"
	jwtVarIssuer        = "issuer"
	jwtVarAudience      = "audience"
	jwtVarAppProperty   = "token-app-property"
	jwtVarIdentityPath  = "identity-path"
	jwtVarEnforced      = "enforced-claims"
	jwtVarClaimAliases  = "claim-aliases"
	jwtRegexDescription = `[a-zA-Z|$|_][a-zA-Z|$|_|\-|0-9|.]*(/[a-zA-Z|$|_][a-zA-Z|$|_|\-|0-9|.]*)*`
)

var jwtVarNames = []string{
	jwtVarJWKSURI, jwtVarPublicKeys, jwtVarProviderURI, jwtVarCACert, jwtVarIssuer, jwtVarAudience,
	jwtVarAppProperty, jwtVarIdentityPath, jwtVarEnforced, jwtVarClaimAliases,
}

// claimPathRE is Conjur's PURE_NESTED_CLAIM_NAME_REGEX: claim names of
// letters, digits, '$', '_', '-', '.' and '|' (its character classes take
// '|' literally), joined by '/' into a path. A '.' is part of a name, never
// a separator.
var claimPathRE = regexp.MustCompile(`^` + jwtRegexDescription + `$`)

// claimsDenyList are the registered claims a host may not be pinned by
// (CLAIMS_DENY_LIST).
var claimsDenyList = []string{"iss", "exp", "nbf", "iat", "jti", "aud"}

// jwtVar is one configuration variable: declared in policy, maybe with a
// value.
type jwtVar struct {
	value string
	set   bool
}

// jwtVars are the service's declared variables by name.
type jwtVars struct {
	service string
	account string
	vars    map[string]jwtVar
}

// jwtVarsLocked reads service's variables. The caller holds s.mu.
func (s *Server) jwtVarsLocked(service string) jwtVars {
	v := jwtVars{service: service, account: s.account, vars: map[string]jwtVar{}}
	for _, name := range jwtVarNames {
		res, ok := s.st.resources[s.st.fullID("variable", jwtPrefix+service+"/"+name)]
		if !ok {
			continue
		}
		sv, has := res.latest()
		v.vars[name] = jwtVar{value: string(sv.value), set: has}
	}
	return v
}

func (v jwtVars) declared(name string) bool { _, ok := v.vars[name]; return ok }

// required is Conjur's FetchAuthenticatorSecrets: a declared variable
// without a value is an error (CONJ00037E).
func (v jwtVars) required(name string) (string, error) {
	jv := v.vars[name]
	if !jv.set {
		return "", errSecretMissing(v.account + ":variable:" + jwtPrefix + v.service + "/" + name)
	}
	return jv.value, nil
}

// optional is the value of a variable if declared, "" if not; declared
// without a value is CONJ00037E.
func (v jwtVars) optional(name string) (string, bool, error) {
	if !v.declared(name) {
		return "", false, nil
	}
	val, err := v.required(name)
	return val, err == nil, err
}

func errSigningKeySettings(msg string) *authnError {
	return authnErr(errJWT+"InvalidSigningKeySettings", "CONJ00122E", "Invalid signing key settings: %s", msg)
}

// signingKeys is SigningKeySettingsBuilder and FetchPublicKeysSigningKey:
// exactly one source of keys (jwks-uri, public-keys or provider-uri),
// ca-cert only with a URI, and an issuer with public-keys. The dev server
// fetches nothing, so a URI source fails as an unreachable one would.
func (v jwtVars) signingKeys() (map[string]*rsa.PublicKey, error) {
	vals := map[string]string{}
	for _, name := range []string{jwtVarJWKSURI, jwtVarPublicKeys, jwtVarProviderURI, jwtVarCACert, jwtVarIssuer} {
		val, ok, err := v.optional(name)
		if err != nil {
			return nil, err
		}
		if ok {
			vals[name] = val
		}
	}
	has := func(n string) bool { _, ok := vals[n]; return ok }
	jwks, pk, prov := has(jwtVarJWKSURI), has(jwtVarPublicKeys), has(jwtVarProviderURI)
	switch {
	case !jwks && !pk && !prov:
		return nil, errSigningKeySettings("One of the following must be defined: jwks-uri, public-keys, or provider-uri")
	case jwks && pk && prov:
		return nil, errSigningKeySettings("jwks-uri, public-keys, and provider-uri cannot be defined simultaneously")
	case jwks && prov:
		return nil, errSigningKeySettings("jwks-uri and provider-uri cannot be defined simultaneously")
	case jwks && pk:
		return nil, errSigningKeySettings("jwks-uri and public-keys cannot be defined simultaneously")
	case pk && prov:
		return nil, errSigningKeySettings("public-keys and provider-uri cannot be defined simultaneously")
	case has(jwtVarCACert) && !jwks && !prov:
		return nil, errSigningKeySettings("ca-cert can only be defined together with jwks-uri or provider-uri")
	case pk && !has(jwtVarIssuer):
		return nil, errSigningKeySettings("issuer is mandatory when public-keys is defined")
	case jwks:
		return nil, errNoFetch(vals[jwtVarJWKSURI])
	case prov:
		return nil, errNoFetch(vals[jwtVarProviderURI])
	}
	return parsePublicKeys(vals[jwtVarPublicKeys])
}

// errNoFetch is Conjur's answer when it cannot fetch keys from a URI; the
// dev server never makes outbound calls.
func errNoFetch(uri string) *authnError {
	return authnErr(errJWT+"FetchJwksKeysFailed", "CONJ00087E",
		"Failed to fetch JWKS from '%s'. Reason: 'the conjur-swarm dev server makes no outbound calls: set public-keys instead'", uri)
}

func errPublicKeys(msg string) *authnError {
	return authnErr(errJWT+"InvalidPublicKeys", "CONJ00120E", "Failed to parse 'public-keys': %s", msg)
}

// parsePublicKeys reads Conjur's public-keys value (PublicSigningKeys):
// {"type":"jwks","value":{"keys":[...]}} with at least one key. Keys are
// returned by kid; only RSA keys can verify the algorithms Conjur accepts
// (RS256/384/512), so other key types are kept out.
func parsePublicKeys(text string) (map[string]*rsa.PublicKey, error) {
	var v struct {
		Type  *string `json:"type"`
		Value *struct {
			Keys []struct {
				Kty, Kid, N, E string
			} `json:"keys"`
		} `json:"value"`
	}
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, errPublicKeys("Value not in valid JSON format")
	}
	switch {
	case v.Type == nil || *v.Type == "":
		return nil, errPublicKeys("Type can't be blank and Type '' is not a valid public-keys type. Valid types are: jwks")
	case *v.Type != "jwks":
		return nil, errPublicKeys("Type '" + *v.Type + "' is not a valid public-keys type. Valid types are: jwks")
	case v.Value == nil || len(v.Value.Keys) == 0:
		return nil, errPublicKeys("Value is not a valid JWKS (RFC7517)")
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range v.Value.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errPublicKeys("Value is not a valid JWKS (RFC7517): key " + jsonQuote(k.Kid) + " has no base64url n and e")
		}
		exp := 0
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
	}
	return out, nil
}

func jsonQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// audience is FetchAudienceValue: "" when not declared, else its value,
// which must not be blank (CONJ00115E).
func (v jwtVars) audience() (string, error) {
	val, ok, err := v.optional(jwtVarAudience)
	if err != nil || !ok {
		return "", err
	}
	if rubyBlank(val) {
		return "", authnErr(errJWT+"AudienceValueIsEmpty", "CONJ00115E", "Failed to fetch audience value: audience value is empty")
	}
	return val, nil
}

// validateClaimName is ValidateClaimName with Conjur's deny list.
func validateClaimName(name string) error {
	switch {
	case rubyBlank(name):
		return authnErr(errJWT+"FailedToValidateClaimMissingClaimName", "CONJ00103E",
			"Failed to validate claim: claim name is empty or was not found.")
	case !claimPathRE.MatchString(name):
		return authnErr(errJWT+"FailedToValidateClaimForbiddenClaimName", "CONJ00104E",
			"Failed to validate claim: claim name '%s' does not match regular expression: '%s'.", name, "^"+jwtRegexDescription+"$")
	case slices.Contains(claimsDenyList, name):
		return authnErr(errJWT+"FailedToValidateClaimClaimNameInDenyList", "CONJ00105E",
			"Failed to validate claim: claim name '%s' is in denylist '%s'", name, rubyInspect(claimsDenyList))
	}
	return nil
}

// enforcedClaims is FetchEnforcedClaims and ParseEnforcedClaims: a comma
// separated list of claim names, no empty entries, no duplicates.
func (v jwtVars) enforcedClaims() ([]string, error) {
	raw, ok, err := v.optional(jwtVarEnforced)
	if err != nil || !ok {
		return nil, err
	}
	if rubyBlank(raw) {
		return nil, authnErr(errJWT+"FailedToParseEnforcedClaimsMissingInput", "CONJ00106E",
			"Failed to parse enforced claims: enforced claim value is empty or was not found.")
	}
	claims := rubySplit(raw, ",")
	if strings.HasPrefix(raw, ",") || strings.HasSuffix(raw, ",") || slices.Contains(claims, "") {
		return nil, authnErr(errJWT+"InvalidEnforcedClaimsFormat", "CONJ00107E",
			"List of enforced claims '%s' is in invalid format. Separate claim names with commas.", raw)
	}
	if len(uniq(claims)) != len(claims) {
		return nil, authnErr(errJWT+"InvalidEnforcedClaimsFormatContainsDuplication", "CONJ00108E",
			"List of enforced claims '%s' must not contain duplications.", raw)
	}
	for _, c := range claims {
		if err := validateClaimName(c); err != nil {
			return nil, err
		}
	}
	return claims, nil
}

// rubySplit is Ruby's String#split(sep).map(&:strip): trailing empty
// fields are dropped, inner ones kept.
func rubySplit(s, sep string) []string {
	parts := strings.Split(s, sep)
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func uniq(items []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, it := range items {
		if !seen[it] {
			seen[it] = true
			out = append(out, it)
		}
	}
	return out
}

// claimAliases is FetchClaimAliases and ParseClaimAliases: a comma
// separated list of annotation_name:claim_name, returned as annotation
// name -> claim name.
func (v jwtVars) claimAliases() (map[string]string, error) {
	raw, ok, err := v.optional(jwtVarClaimAliases)
	if err != nil || !ok {
		return map[string]string{}, err
	}
	if rubyBlank(raw) {
		return nil, authnErr(errJWT+"ClaimAliasesMissingInput", "CONJ00109E",
			"Failed to parse claim aliases: the claim aliases value is empty or was not found.")
	}
	blankErr := authnErr(errJWT+"ClaimAliasesBlankOrEmpty", "CONJ00110E",
		"Failed to parse claim aliases: one or more mapping statements are blank or empty '%s'.", raw)
	tuples := rubySplit(raw, ",")
	if strings.HasSuffix(raw, ",") || len(tuples) == 0 {
		return nil, blankErr
	}
	out := map[string]string{}
	claimsSeen := map[string]bool{}
	for _, tuple := range tuples {
		if rubyBlank(tuple) {
			return nil, blankErr
		}
		annotation, claim, err := aliasTuple(tuple)
		if err != nil {
			return nil, err
		}
		if _, dup := out[annotation]; dup {
			return nil, errAliasDup("annotation name", annotation)
		}
		if claimsSeen[claim] {
			return nil, errAliasDup("claim name", claim)
		}
		out[annotation], claimsSeen[claim] = claim, true
	}
	return out, nil
}

func errAliasDup(purpose, value string) error {
	return authnErr(errJWT+"ClaimAliasDuplicationError", "CONJ00113E",
		"Failed to parse claim aliases: %s value '%s' appears more than once", purpose, value)
}

// aliasTuple parses one annotation_name:claim_name statement.
func aliasTuple(tuple string) (string, string, error) {
	formatErr := authnErr(errJWT+"ClaimAliasInvalidFormat", "CONJ00111E",
		"Failed to parse claim aliases: the claim alias value '%s' is in invalid format.The correct format is: 'annotation_name:claim_name'", tuple)
	parts := rubySplit(tuple, ":")
	if len(parts) != 2 {
		return "", "", formatErr
	}
	if strings.Contains(parts[0], "/") {
		return "", "", authnErr(errJWT+"ClaimAliasNameInvalidCharacter", "CONJ00114E",
			"Failed to parse claim aliases: the claim alias name '%s' contains '/'.", parts[0])
	}
	for _, p := range parts {
		if rubyBlank(p) {
			return "", "", formatErr
		}
		if err := validateClaimName(p); err != nil {
			return "", "", authnErr(errJWT+"ClaimAliasInvalidClaimFormat", "CONJ00112E",
				"Failed to parse claim aliases: one of the claims in the claim alias value '%s' is in an invalid format : %s.",
				tuple, err.(*authnError).inspect())
		}
	}
	return parts[0], parts[1], nil
}
