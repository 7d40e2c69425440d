package conjurdev

import (
	"crypto/rsa"
	"fmt"
	"net/http"
	"strings"
)

// authn-azure and authn-gcp as Conjur 1.24 does them
// (app/domain/authentication/authn_azure, authn_gcp, o_auth): the token is
// verified with the identity provider's keys, then the host's annotations
// are matched against its claims. Conjur fetches the keys from the
// provider; the dev server is given them (Options.ProviderKeys, by
// issuer) and makes no outbound call.

// gcpIssuer is Google's issuer, the only provider authn-gcp trusts.
const gcpIssuer = "https://accounts.google.com"

// parseProviderKeys reads Options.ProviderKeys: issuer -> JWKS.
func parseProviderKeys(in map[string]string) (map[string]map[string]*rsa.PublicKey, error) {
	out := map[string]map[string]*rsa.PublicKey{}
	for issuer, jwks := range in {
		keys, err := parsePublicKeys(`{"type":"jwks","value":` + jwks + `}`)
		if err != nil {
			return nil, fmt.Errorf("conjurdev: provider keys of %s: want a JWKS {\"keys\":[...]} of RSA keys: %w", issuer, err)
		}
		out[issuer] = keys
	}
	return out, nil
}

// verifyProviderJWT is OAuth::VerifyAndDecodeToken: the provider's keys
// (unknown provider: CONJ00011E, as a failed discovery), the signature
// with a kid, exp and nbf when present, iss equal to issuer, and iat when
// asked (authn-gcp).
func (s *Server) verifyProviderJWT(raw, issuer string, verifyIat bool) (map[string]any, error) {
	keys, ok := s.providerKeys[issuer]
	if !ok {
		return nil, authnErr("Errors::Authentication::OAuth::ProviderDiscoveryFailed", "CONJ00011E",
			"Failed to discover Identity Provider (Provider URI: '%s'). Reason: 'the conjur-swarm dev server makes no outbound calls: give it the provider's keys (Options.ProviderKeys, --provider-keys)'", issuer)
	}
	claims, err := verifySignature(raw, keys)
	if err != nil {
		return nil, err
	}
	if err := checkTimes(claims, s.now()); err != nil {
		return nil, err
	}
	return claims, checkClaims(claims, jwtCheck{issuer: issuer, now: s.now(), skipIat: !verifyIat})
}

func errClaimNotFound(name string) *authnError {
	return authnErr(errJwtToken+"TokenClaimNotFoundOrEmpty", "CONJ00051E", "Claim '%s' not found or empty in token", name)
}

func (s *Server) authenticateAzure(w http.ResponseWriter, r *http.Request) {
	req := authnRequest{authenticator: "authn-azure", service: r.PathValue("service"), account: r.PathValue("account"), login: r.PathValue("id")}
	body, err := readCredentials(r)
	if err == nil {
		s.mu.RLock()
		err = s.authenticateLocked(req, func(role *resource) error { return s.checkAzure(req, role, body) })
		s.mu.RUnlock()
	}
	s.answerAuthn(w, r, req.name(), req.login, err)
}

// checkAzure is AuthnAzure::Authenticator: provider-uri required, the
// token's iss equal to it (with one trailing "/"), the claims xms_mirid
// and oid present, then the annotations subscription-id and
// resource-group (required), and user-assigned-identity or
// system-assigned-identity (at most one).
func (s *Server) checkAzure(req authnRequest, role *resource, body []byte) error {
	provider, err := s.requiredServiceVar(req, "provider-uri")
	if err != nil {
		return err
	}
	raw, err := jwtFromBody(body)
	if err != nil {
		return err
	}
	claims, err := s.verifyProviderJWT(raw, strings.TrimSuffix(provider, "/")+"/", false)
	if err != nil {
		return err
	}
	mirid, oid := claims["xms_mirid"], claims["oid"]
	if mirid == nil || mirid == false {
		return errClaimNotFound("xms_mirid")
	}
	if oid == nil || oid == false {
		return errClaimNotFound("oid")
	}
	m, err := parseXmsMirid(fmt.Sprint(mirid))
	if err != nil {
		return err
	}
	const sub, rg, uai, sai = "subscription-id", "resource-group", "user-assigned-identity", "system-assigned-identity"
	constraints := []func([]string) error{
		requiredConstraint([]string{sub, rg}),
		permittedConstraint([]string{sub, rg, uai, sai}),
		exclusiveConstraint([]string{uai, sai}),
	}
	userAssigned := strings.Contains(strings.Join(m["providers"], "/"), "Microsoft.ManagedIdentity")
	return checkAnnotations(annotationRestrictions(role, "authn-azure", req.service), constraints, func(r restriction) (bool, error) {
		var got any
		switch r.name {
		case sub:
			got = m["subscriptions"][0]
		case rg:
			got = m["resourcegroups"][0]
		case uai:
			if userAssigned {
				got = m["providers"][len(m["providers"])-1]
			}
		case sai:
			if !userAssigned {
				got = oid
			}
		}
		return got == r.value, nil
	})
}

// parseXmsMirid is XmsMirid: the resource id split at "/" into parts that
// start at subscriptions, resourcegroups and providers (all required,
// providers with exactly three parts).
func parseXmsMirid(mirid string) (map[string][]string, error) {
	parts := strings.Split(mirid, "/")
	if len(parts) > 0 && parts[0] == "" {
		parts = parts[1:]
	}
	keys := []string{"subscriptions", "resourcegroups", "providers"}
	out := map[string][]string{}
	cur := ""
	for _, p := range parts {
		isKey := false
		for _, k := range keys {
			isKey = isKey || strings.Contains(p, k)
		}
		if isKey || cur == "" {
			cur = p
			out[cur] = []string{}
			continue
		}
		out[cur] = append(out[cur], p)
	}
	var missing []string
	for _, k := range keys {
		if _, ok := out[k]; !ok || (k != "providers" && len(out[k]) == 0) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, authnErr("Errors::Authentication::AuthnAzure::MissingRequiredFieldsInXmsMirid", "CONJ00053E",
			"Required fields %s are missing in xms_mirid %s", rubyInspect(missing), mirid)
	}
	if len(out["providers"]) != 3 {
		return nil, authnErr("Errors::Authentication::AuthnAzure::InvalidProviderFieldsInXmsMirid", "CONJ00054E",
			"Provider fields are in invalid format in xms_mirid %s. Make sure it follows the format '/subscriptions/<subscription_id>/resourcegroups/<resource_group>/providers/<provider_name>/<provider_type>/<resource_name>'", mirid)
	}
	return out, nil
}

func (s *Server) authenticateGCP(w http.ResponseWriter, r *http.Request) {
	req := authnRequest{authenticator: "authn-gcp", account: r.PathValue("account")}
	body, err := readCredentials(r)
	if err == nil {
		s.mu.RLock()
		err = s.authenticateGCPLocked(&req, body)
		s.mu.RUnlock()
	}
	s.answerAuthn(w, r, req.name(), req.login, err)
}

// authenticateGCPLocked is AuthnGcp::UpdateAuthenticatorInput (the token
// from Google, aud = conjur/<account>/<login>) then the generic steps and
// the annotations: at least one of project-id, service-account-id,
// service-account-email, and instance-name beside them.
func (s *Server) authenticateGCPLocked(req *authnRequest, body []byte) error {
	if req.account != s.account {
		return errAccountNotDefined(req.account)
	}
	raw, err := jwtFromBody(body)
	if err != nil {
		return err
	}
	claims, err := s.verifyProviderJWT(raw, gcpIssuer, true)
	if err != nil {
		return err
	}
	audience, _ := claims["aud"].(string)
	if audience == "" {
		return errClaimNotFound("aud")
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return errClaimNotFound("sub")
	}
	parts := strings.SplitN(audience, "/", 3)
	if len(parts) != 3 || parts[0] != "conjur" {
		return authnErr("Errors::Authentication::AuthnGcp::InvalidAudience", "CONJ00067E",
			"'audience' token claim %s is invalid. The format should be 'conjur/<account-name>/<host-id>'", audience)
	}
	if parts[1] != req.account {
		return authnErr("Errors::Authentication::AuthnGcp::InvalidAccountInAudienceClaim", "CONJ00070E",
			"'audience' token claim '%s' is invalid. The account in the audience '%s' does not match the account in the URL request '%s'", audience, parts[1], req.account)
	}
	req.login = parts[2]
	claimOf := map[string]string{
		"project-id": "google/compute_engine/project_id", "instance-name": "google/compute_engine/instance_name",
		"service-account-id": "sub", "service-account-email": "email",
	}
	anyOf := []string{"project-id", "service-account-id", "service-account-email"}
	constraints := []func([]string) error{anyConstraint(anyOf), permittedConstraint(append(anyOf, "instance-name"))}
	return s.authenticateLocked(*req, func(role *resource) error {
		return checkAnnotations(annotationRestrictions(role, "authn-gcp", ""), constraints, func(r restriction) (bool, error) {
			got, _ := claimValue(claims, claimOf[r.name])
			if rubyBlankValue(got) {
				return false, authnErr("Errors::Authentication::AuthnGcp::JwtTokenClaimIsMissing", "CONJ00068E",
					"Claim '%s' is missing from Google's JWT token. Verify that you configured the host with permitted restrictions. In case of Compute Engine token, verify that you requested the token using 'format=full'", r.name)
			}
			return got == r.value, nil
		})
	})
}
