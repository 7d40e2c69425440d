package conjurdev

import (
	"slices"
	"sort"
	"strings"
)

// The rules a host's annotations set on the claims of its JWTs, as
// Conjur's ConfigurationJWTGenericVendor#validate_restrictions checks
// them (resource_restrictions/, constraints/, restriction_validation/).

// jwtRestrictions are the host's service-specific annotations
// authn-jwt/<service>/<claim>, as claim (or alias) -> required value.
// General ones (authn-jwt/<claim>) do not count: Conjur's
// GetServiceSpecificRestrictionFromAnnotation drops them. Empty values are
// kept (ignore_empty_annotations: false).
func jwtRestrictions(host *resource, service string) (names []string, values map[string]string) {
	prefix := "authn-jwt/" + service + "/"
	values = map[string]string{}
	for name, a := range host.annotations {
		if claim, ok := strings.CutPrefix(name, prefix); ok {
			values[claim] = a.value
			names = append(names, claim)
		}
	}
	sort.Strings(names)
	return names, values
}

// checkRestrictions applies the service's enforced claims and claim
// aliases to the host's annotations, then matches each against claims.
func checkRestrictions(vars jwtVars, host *resource, claims map[string]any) error {
	enforced, err := vars.enforcedClaims()
	if err != nil {
		return err
	}
	aliases, err := vars.claimAliases() // annotation name -> claim name
	if err != nil {
		return err
	}
	names, values := jwtRestrictions(host, vars.service)
	if err := checkConstraints(names, enforced, aliases); err != nil {
		return err
	}
	for _, name := range names {
		if err := matchRestriction(name, values[name], aliases, claims); err != nil {
			return err
		}
	}
	return nil
}

// checkConstraints is ValidateRestrictionName on every name, then
// CreateConstraints' list: at least one annotation (CONJ00099E), every
// enforced claim present under its alias if it has one (CONJ00057E), no
// registered claim and no claim that has an alias used by its own name
// (CONJ00069E).
func checkConstraints(names, enforced []string, aliases map[string]string) error {
	for _, n := range names {
		if n == "" || !claimPathRE.MatchString(n) {
			return authnErr(errJWT+"InvalidRestrictionName", "CONJ00119E",
				"Restriction '%s' is invalid and not representing claim path in the token", n)
		}
	}
	if len(names) == 0 {
		return authnErr(errConstraints+"RoleMissingAnyRestrictions", "CONJ00099E", "Role must have at least one relevant annotation")
	}
	annotationOf := map[string]string{} // claim name -> alias
	for a, c := range aliases {
		annotationOf[c] = a
	}
	var missing []string
	for _, c := range enforced {
		want := c
		if a, ok := annotationOf[c]; ok {
			want = a
		}
		if !slices.Contains(names, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		return authnErr(errConstraints+"RoleMissingConstraints", "CONJ00057E",
			"Role does not have the required constraints: '%s'", rubyInspect(missing))
	}
	var refused []string
	for _, n := range names {
		if _, aliased := annotationOf[n]; aliased || slices.Contains(claimsDenyList, n) {
			refused = append(refused, n)
		}
	}
	if len(refused) > 0 {
		inner := authnErr(errConstraints+"NonPermittedRestrictionGiven", "CONJ00069E",
			"Role can't have one of these none permitted restrictions '%s'", rubyInspect(refused))
		return authnErr(errJWT+"RoleWithRegisteredOrClaimAliasError", "CONJ00069E",
			"Role can't have registered or aliased claim. Error: '%s'", inner.inspect())
	}
	return nil
}

// matchRestriction is ValidateRestrictionsOneToOne: the annotation must
// have a value; the claim (through its alias) is looked up first by its
// whole name, then as a "/" path into nested objects; only an equal
// string matches.
func matchRestriction(name, want string, aliases map[string]string, claims map[string]any) error {
	if rubyBlank(want) {
		return authnErr(errRestrictions+"EmptyAnnotationGiven", "CONJ00100E", "Annotation, '%s', is empty", name)
	}
	claim := name
	if c, ok := aliases[name]; ok {
		claim = c
	}
	got, err := claimValue(claims, claim)
	if err != nil {
		return err
	}
	if got == nil {
		forErr := claim
		if claim != name {
			forErr = claim + " (annotation: " + name + ")"
		}
		return authnErr(errJWT+"JwtTokenClaimIsMissing", "CONJ00084E",
			"Claim '%s' is missing from JWT token. Verify that you configured the host with permitted restrictions.", forErr)
	}
	if s, ok := got.(string); !ok || s != want {
		return authnErr(errRestrictions+"InvalidResourceRestrictions", "CONJ00049E",
			"Resource restriction '%s' does not match with the corresponding value in the request", name)
	}
	return nil
}

// claimValue is Conjur's lookup: claims[name], else claims.dig(*path) with
// name split at "/". A path through a value that is not an object is
// Ruby's TypeError (still a 401).
func claimValue(claims map[string]any, name string) (any, error) {
	if v, ok := claims[name]; ok && v != nil {
		return v, nil
	}
	if !claimPathRE.MatchString(name) {
		return nil, authnErr(errJWT+"InvalidClaimPath", "CONJ00116E",
			"Failed to parse claim path: '%s'. The claim path is in an invalid format. The valid format should meet the following regex: '%s'",
			name, "^"+jwtRegexDescription+"$")
	}
	var cur any = claims
	for _, part := range strings.Split(name, "/") {
		if cur == nil {
			return nil, nil
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, authnErr("TypeError", "", "the claim path %s passes through a value that is not an object", name)
		}
		cur = m[part]
	}
	return cur, nil
}
