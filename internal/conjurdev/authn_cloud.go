package conjurdev

import (
	"errors"
	"io"
	"net/http"
)

// authn-iam, authn-azure, authn-gcp and authn-cert go through Conjur's
// generic Authentication::Authenticate (app/domain/authentication/authenticate.rb
// at v1.24.0): the authenticator enabled (CONJ00004E), the role existing
// (CONJ00007E), its webservice existing (CONJ00005E) and the role holding
// authenticate on it (403, CONJ00006E), and only then the authenticator's
// own check of the credentials (Invalid credentials CONJ00002E or its own
// error). authn-gcp first takes the login from the token's audience
// (AuthnGcp::UpdateAuthenticatorInput).

// authnRequest is one authentication through one of those authenticators.
type authnRequest struct {
	authenticator string // "authn-iam", "authn-azure", "authn-gcp", "authn-cert"
	service       string // "" for authn-gcp
	account       string
	login         string // from the URL, or from the token (authn-gcp, SPIFFE)
}

// name is the authenticator as Conjur names it: "authn-iam/prod", "authn-gcp".
func (a authnRequest) name() string {
	if a.service == "" {
		return a.authenticator
	}
	return a.authenticator + "/" + a.service
}

func errInvalidCredentials() *authnError {
	return authnErr("Errors::Authentication::InvalidCredentials", "CONJ00002E", "Invalid credentials")
}

// authenticateLocked runs the generic steps, then valid, the
// authenticator's check of the credentials for role. The caller holds s.mu.
func (s *Server) authenticateLocked(req authnRequest, valid func(role *resource) error) error {
	if req.account != s.account {
		return errAccountNotDefined(req.account)
	}
	if !s.enabledLocked(req.name()) {
		return errNotEnabled(req.name())
	}
	role, err := s.mayAuthenticateLocked(req.name(), req.login)
	if err != nil {
		return err
	}
	return valid(role)
}

// serviceVar is the value of the variable conjur/<authenticator>/<service>/<name>
// when it has one; ok is false when it is not declared, and a declared
// variable without a value is CONJ00037E.
func (s *Server) serviceVar(req authnRequest, name string) (string, bool, error) {
	id := s.st.fullID("variable", "conjur/"+req.name()+"/"+name)
	res, ok := s.st.resources[id]
	if !ok {
		return "", false, nil
	}
	sv, has := res.latest()
	if !has {
		return "", false, errSecretMissing(id)
	}
	return string(sv.value), true, nil
}

// requiredServiceVar is serviceVar for a variable Conjur requires: not
// declared is CONJ00036E.
func (s *Server) requiredServiceVar(req authnRequest, name string) (string, error) {
	v, ok, err := s.serviceVar(req, name)
	if err == nil && !ok {
		id := s.st.fullID("variable", "conjur/"+req.name()+"/"+name)
		err = authnErr(errConjur+"RequiredResourceMissing", "CONJ00036E", "Missing required resource: %s", id)
	}
	return v, err
}

// answerAuthn writes the access token for login, or Conjur's refusal.
func (s *Server) answerAuthn(w http.ResponseWriter, r *http.Request, name, login string, err error) {
	if err != nil {
		var ae *authnError
		if !errors.As(err, &ae) {
			ae = authnErr("RuntimeError", "", "%s", err.Error())
		}
		s.refuse(w, name, ae)
		return
	}
	s.writeToken(w, r, login)
}

// readCredentials reads a request body of at most 1 MiB.
func readCredentials(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}

func (s *Server) cloudRoutes() {
	s.handle("POST /authn-iam/{service}/{account}/{id}/authenticate", EpAuthnCloud, false, s.authenticateIAM)
	s.handle("POST /authn-azure/{service}/{account}/{id}/authenticate", EpAuthnCloud, false, s.authenticateAzure)
	s.handle("POST /authn-gcp/{account}/authenticate", EpAuthnCloud, false, s.authenticateGCP)
	s.handle("PATCH /authn-gcp/{account}", EpAuthenticators, true, s.authed(s.updateAuthenticator))
	s.handle("GET /authn-gcp/{account}/status", EpAuthenticators, false, s.authed(s.authenticatorStatus))
	s.handle("POST /authn-cert/{service}/{account}/{id}/authenticate", EpAuthnCloud, false, s.authenticateCert)
	s.handle("POST /authn-cert/{service}/{account}/authenticate", EpAuthnCloud, false, s.authenticateCert)
}
