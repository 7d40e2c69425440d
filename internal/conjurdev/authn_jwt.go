package conjurdev

import (
	"errors"
	"io"
	"net/http"
	"strings"
)

// authenticateJWT answers POST /authn-jwt/{service}/{account}[/{id}]/authenticate
// as Conjur 1.24's AuthenticateController#authenticate_jwt and
// AuthnJwt::OrchestrateAuthentication do: every refusal is a 401 with an
// empty body, except a missing jwt field (400), a role without the
// authenticate privilege (403) and an expired token (401 with Conjur's
// JSON error CONJ00016E). The reason is logged, as Conjur logs it.
func (s *Server) authenticateJWT(w http.ResponseWriter, r *http.Request) {
	service := r.PathValue("service")
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		unauthorized(w, "")
		return
	}
	s.mu.RLock()
	login, err := s.jwtLoginLocked(jwtRequest{service: service, account: r.PathValue("account"), urlID: r.PathValue("id"), body: body})
	s.mu.RUnlock()
	if err != nil {
		var ae *authnError
		if !errors.As(err, &ae) {
			ae = authnErr("RuntimeError", "", "%s", err.Error())
		}
		s.refuse(w, "authn-jwt/"+service, ae)
		return
	}
	s.writeToken(w, r, login)
}

type jwtRequest struct {
	service, account string
	urlID            string // the login in the URL form, "" without
	body             []byte
}

// jwtLoginLocked runs Conjur's steps in Conjur's order and returns the
// login the access token is issued to. The caller holds s.mu.
func (s *Server) jwtLoginLocked(req jwtRequest) (string, error) {
	name := "authn-jwt/" + req.service
	if req.account != s.account {
		return "", errAccountNotDefined(req.account)
	}
	if !s.enabledLocked(name) {
		return "", errNotEnabled(name)
	}
	raw, err := jwtFromBody(req.body)
	if err != nil {
		return "", err
	}
	vars := s.jwtVarsLocked(req.service)
	claims, err := s.decodeJWT(vars, raw)
	if err != nil {
		return "", err
	}
	login, err := jwtIdentity(vars, claims, req.urlID)
	if err != nil {
		return "", err
	}
	role, err := s.mayAuthenticateLocked(name, login)
	if err != nil {
		return "", err
	}
	if err := checkRestrictions(vars, role, claims); err != nil {
		return "", err
	}
	return login, nil
}

// decodeJWT reads the signing keys, issuer and audience, and verifies raw.
func (s *Server) decodeJWT(vars jwtVars, raw string) (map[string]any, error) {
	keys, err := vars.signingKeys()
	if err != nil {
		return nil, err
	}
	issuer, err := vars.required(jwtVarIssuer)
	if err != nil {
		return nil, err
	}
	audience, err := vars.audience()
	if err != nil {
		return nil, err
	}
	return verifyJWT(raw, jwtCheck{keys: keys, issuer: issuer, audience: audience, now: s.now()})
}

func errIdentityMisconfigured() *authnError {
	return authnErr(errJWT+"IdentityMisconfigured", "CONJ00098E", "JWT identity configuration is invalid")
}

// jwtIdentity is CreateIdentityProvider: the login comes from the token
// when token-app-property is declared, from the URL otherwise; both or
// neither is CONJ00098E. From the token it is host/<identity-path>/<claim>,
// the claim looked up by its whole name first, then as a "/" path.
// A login from the URL is taken as it is: a user ("alice") or a host
// ("host/apps/x").
func jwtIdentity(vars jwtVars, claims map[string]any, urlID string) (string, error) {
	inToken := vars.declared(jwtVarAppProperty)
	switch {
	case inToken && urlID == "", !inToken && urlID != "":
	default:
		return "", errIdentityMisconfigured()
	}
	if !inToken {
		return urlID, nil
	}
	prop, err := vars.required(jwtVarAppProperty)
	if err != nil {
		return "", err
	}
	v, err := claimValue(claims, prop)
	var ae *authnError
	if errors.As(err, &ae) && ae.code == "CONJ00116E" {
		return "", authnErr(errJWT+"InvalidTokenAppPropertyValue", "CONJ00117E",
			"Failed to parse 'token-app-property' value. Error: '%s'", ae.inspect())
	}
	if err != nil {
		return "", err
	}
	id, isString := v.(string)
	if rubyBlankValue(v) && (isString || v == nil) {
		return "", authnErr(errJWT+"NoSuchFieldInToken", "CONJ00081E", "'%s' field not found in the token", prop)
	}
	if !isString {
		return "", authnErr(errJWT+"TokenAppPropertyValueIsNotString", "CONJ00118E",
			"'%s' value in token has type '%s'. An identity must be a String.", prop, rubyClass(v))
	}
	path, _, err := vars.optional(jwtVarIdentityPath)
	if err != nil {
		return "", err
	}
	return rubyFileJoin("host", path, id), nil
}

// rubyClass names a JSON value's Ruby class.
func rubyClass(v any) string {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return "Integer"
		}
		return "Float"
	case bool:
		if x {
			return "TrueClass"
		}
		return "FalseClass"
	case []any:
		return "Array"
	case map[string]any:
		return "Hash"
	}
	return "NilClass"
}

// rubyFileJoin is Ruby's File.join: parts joined by "/", one separator
// where a part ends or the next begins with one.
func rubyFileJoin(parts ...string) string {
	out := ""
	for i, p := range parts {
		if i == 0 {
			out = p
			continue
		}
		out = strings.TrimRight(out, "/") + "/" + strings.TrimLeft(p, "/")
	}
	return out
}

// mayAuthenticateLocked is ValidateRoleCanAccessWebservice: the role
// exists (CONJ00007E), the authenticator's webservice exists (CONJ00005E)
// and the role holds authenticate on it (CONJ00006E, 403).
func (s *Server) mayAuthenticateLocked(authenticator, login string) (*resource, error) {
	role, ok := s.st.resources[s.roleIDFromUsername(login)]
	if !ok || !role.isRole() {
		return nil, errRoleNotFound(login)
	}
	wsID := s.st.fullID("webservice", "conjur/"+authenticator)
	ws, ok := s.st.resources[wsID]
	if !ok {
		return nil, errWebserviceNotFound(authenticator)
	}
	if !s.st.can(role.id, ws, "authenticate") {
		return nil, errNotAuthorized(login, "authenticate", wsID)
	}
	return role, nil
}
