package conjurdev

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Enabling, status and listing of authenticators, as Conjur 1.24's
// AuthenticateController (update_config, authn_jwt_status, index) and
// DB::Repository::AuthenticatorConfigRepository do.

// installedAuthenticators are the authenticators this server implements.
var installedAuthenticators = []string{"authn", "authn-azure", "authn-cert", "authn-gcp", "authn-iam", "authn-jwt"}

// enabledLocked is Conjur's enabled_authenticators: the ones listed in
// Options.Authenticators (CONJUR_AUTHENTICATORS) and the ones enabled
// through the API, together. The caller holds s.mu.
func (s *Server) enabledLocked(name string) bool {
	return s.authnEnabled(name) || s.st.apiEnabled[name]
}

// configuredRE picks "authn-x" or "authn-x/service" out of a webservice
// id conjur/authn-x[/service], leaving out nested ones (status).
var configuredRE = regexp.MustCompile(`^conjur/(authn(?:-[^/]+)?(?:/[^/]+)?)$`)

// configuredLocked is Conjur's configured_authenticators: authn and every
// webservice named like an authenticator. The caller holds s.mu.
func (s *Server) configuredLocked() []string {
	out := []string{"authn"}
	for _, res := range s.st.resources {
		if m := configuredRE.FindStringSubmatch(res.ident); res.kind == "webservice" && m != nil {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// updateAuthenticator answers PATCH /{authenticator}[/{service}]/{account}
// (conjur-api-go's EnableAuthenticator) as UpdateAuthenticatorConfig: the
// account (401), the webservice (401), a configured authenticator (401),
// update on the webservice (403), then enabled is whether the form's
// "enabled" is "true" (any other value disables).
func (s *Server) updateAuthenticator(w http.ResponseWriter, r *http.Request, c caller) {
	name := authenticatorName(r)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	form, _ := url.ParseQuery(string(body))
	on := strings.ToLower(strings.TrimSpace(form.Get("enabled"))) == "true"
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.mayUpdateAuthenticatorLocked(r.PathValue("account"), name, c); err != nil {
		s.refuse(w, name, err)
		return
	}
	s.st.apiEnabled[name] = on
	s.saveLocked()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) mayUpdateAuthenticatorLocked(account, name string, c caller) *authnError {
	if account != s.account {
		return errAccountNotDefined(account)
	}
	wsID := s.st.fullID("webservice", "conjur/"+name)
	ws, ok := s.st.resources[wsID]
	if !ok {
		return errWebserviceNotFound(name)
	}
	if !slices.Contains(s.configuredLocked(), name) {
		return authnErr("Errors::Authentication::AuthenticatorNotSupported", "CONJ00001E",
			"Authenticator '%s' is not implemented in Conjur", name)
	}
	if !s.st.can(c.role, ws, "update") {
		return errNotAuthorized(loginOf(c.role), "update", wsID)
	}
	return nil
}

// authenticatorName is "authn-x" or "authn-x/service" from the route.
func authenticatorName(r *http.Request) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if svc := r.PathValue("service"); svc != "" {
		name += "/" + svc
	}
	return name
}

// authenticatorStatus answers GET /{authenticator}[/{service}]/{account}/status
// as Conjur's status actions: read on the nested webservice
// conjur/<authenticator>/status (missing 404, no read 403), the
// authenticator's webservice (404), enabled, then the authenticator's own
// configuration; a failure is {"status":"error","error":"#<Class: CONJ...>"}
// with 500 (or the status above).
func (s *Server) authenticatorStatus(w http.ResponseWriter, r *http.Request, c caller) {
	name := authenticatorName(r)
	s.mu.RLock()
	err := s.statusLocked(r.PathValue("account"), name, c)
	s.mu.RUnlock()
	if err == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	var ae *authnError
	if !errors.As(err, &ae) {
		ae = authnErr("RuntimeError", "", "%s", err.Error())
	}
	status := http.StatusInternalServerError
	switch ae.class {
	case "Errors::Authentication::StatusNotSupported":
		status = http.StatusNotImplemented
	case errSecurity + "RoleNotAuthorizedOnResource":
		status = http.StatusForbidden
	case errSecurity + "WebserviceNotFound", "Errors::Authentication::AuthenticatorNotSupported":
		status = http.StatusNotFound
	}
	writeJSON(w, status, map[string]string{"status": "error", "error": ae.inspect()})
}

func (s *Server) statusLocked(account, name string, c caller) error {
	if account != s.account {
		return errAccountNotDefined(account)
	}
	statusID := s.st.fullID("webservice", "conjur/"+name+"/status")
	st, ok := s.st.resources[statusID]
	if !ok {
		return errWebserviceNotFound(name + "/status")
	}
	if !s.st.can(c.role, st, "read") {
		return errNotAuthorized(loginOf(c.role), "read", statusID)
	}
	if _, ok := s.st.resources[s.st.fullID("webservice", "conjur/"+name)]; !ok {
		return errWebserviceNotFound(name)
	}
	if !s.enabledLocked(name) {
		return errNotEnabled(name)
	}
	kind, service, _ := strings.Cut(name, "/")
	switch kind {
	case "authn-jwt":
		return s.jwtStatusLocked(service)
	case "authn-iam":
		e := authnErr("Errors::Authentication::StatusNotSupported", "CONJ00056E", "Status check not supported for authenticator '%s'", kind)
		e.status = http.StatusNotImplemented
		return e
	case "authn-azure":
		provider, err := s.requiredServiceVar(authnRequest{authenticator: kind, service: service}, "provider-uri")
		if err != nil {
			return err
		}
		_, err = s.verifyProviderJWT("", strings.TrimSuffix(provider, "/")+"/", false)
		return providerUnknown(err)
	case "authn-gcp":
		_, err := s.verifyProviderJWT("", gcpIssuer, false)
		return providerUnknown(err)
	}
	return nil
}

// providerUnknown keeps, of a verification of no token, only the error
// that the provider's keys are unknown: the status check of a provider
// is that its keys can be had.
func providerUnknown(err error) error {
	var ae *authnError
	if errors.As(err, &ae) && ae.code == "CONJ00011E" {
		return err
	}
	return nil
}

// jwtStatusLocked is AuthnJwt::ValidateStatus's configuration checks.
func (s *Server) jwtStatusLocked(service string) error {
	vars := s.jwtVarsLocked(service)
	if _, err := vars.signingKeys(); err != nil {
		return err
	}
	if _, err := vars.required(jwtVarIssuer); err != nil {
		return err
	}
	if _, err := vars.audience(); err != nil {
		return err
	}
	if _, err := vars.enforcedClaims(); err != nil {
		return err
	}
	if _, err := vars.claimAliases(); err != nil {
		return err
	}
	if vars.declared(jwtVarAppProperty) {
		prop, err := vars.required(jwtVarAppProperty)
		if err != nil {
			return err
		}
		if !claimPathRE.MatchString(prop) {
			return authnErr(errJWT+"InvalidTokenAppPropertyValue", "CONJ00117E",
				"Failed to parse 'token-app-property' value. Error: 'the claim path %s is not of the form %s'", prop, jwtRegexDescription)
		}
		if _, _, err := vars.optional(jwtVarIdentityPath); err != nil {
			return err
		}
	}
	return nil
}

// listAuthenticators answers GET /authenticators.
func (s *Server) listAuthenticators(w http.ResponseWriter, _ *http.Request) {
	s.mu.RLock()
	configured := s.configuredLocked()
	enabled := []string{}
	for name := range s.authenticators {
		enabled = append(enabled, name)
	}
	for name, on := range s.st.apiEnabled {
		if on {
			enabled = append(enabled, name)
		}
	}
	s.mu.RUnlock()
	slices.Sort(enabled)
	writeJSON(w, http.StatusOK, map[string][]string{
		"installed":  installedAuthenticators,
		"configured": configured,
		"enabled":    slices.Compact(enabled),
	})
}
