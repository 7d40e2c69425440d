package conjur

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// credChoice is the credential one authentication uses, where it came from
// ("handoff", "file", "jwt", "env" or "none", as the status reports it) and
// the credential generation it was read at. source and gen are set even when
// credential fails: the failure is logged with its source, and the generation
// tells a superseded authentication from a current one.
type credChoice struct {
	cred   credential.Credential
	source string
	gen    uint64
}

// credential returns the credential to authenticate with now: the handoff,
// else the file (re-read), else the JWT file (re-read), else the env key.
// It takes session.creds.mu only (a leaf of the lock order).
func (s *session) credential() (credChoice, error) {
	if s.who != nil { // the per-request mode: a JWT signed for this identity
		return s.who.credential()
	}
	s.creds.mu.Lock()
	h, gen := s.creds.handoff, s.creds.gen
	s.creds.mu.Unlock()
	if h != nil {
		return credChoice{cred: *h, source: "handoff", gen: gen}, nil
	}
	switch {
	case s.cfg.AuthnType != "": // the certificate, metadata token or AWS credentials are read at authenticate, and used there only
		return credChoice{cred: credential.Credential{Login: s.cfg.Login}, source: s.cfg.AuthnType, gen: gen}, nil
	case s.cfg.CredentialFile != "":
		cred, err := s.readCredentialFile()
		if err != nil {
			return credChoice{source: "file", gen: gen}, err
		}
		return credChoice{cred: cred, source: "file", gen: gen}, nil
	case s.cfg.JWTTokenPath != "":
		data, err := readSmallFile(s.cfg.JWTTokenPath)
		jwt := string(trimSpaceBytes(data))
		if err != nil || jwt == "" {
			return credChoice{source: "jwt", gen: gen}, &Error{Code: errcode.NoCredential, Cause: err,
				Msg: fmt.Sprintf("no JWT to authenticate with: the file %s (JWT_TOKEN_PATH) is missing, unreadable or empty; make the JWT available there", s.cfg.JWTTokenPath)}
		}
		return credChoice{cred: credential.Credential{JWT: redact.String(jwt)}, source: "jwt", gen: gen}, nil
	case s.cfg.APIKey != "":
		return credChoice{cred: credential.Credential{Login: s.cfg.Login, APIKey: s.cfg.APIKey}, source: "env", gen: gen}, nil
	}
	return credChoice{source: "none", gen: gen}, s.noCredential()
}

// readCredentialFile reads and checks CONJUR_SWARM_CREDENTIAL_FILE: the
// credential in it, or the error that says what to fix.
func (s *session) readCredentialFile() (credential.Credential, *Error) {
	data, err := readSmallFile(s.cfg.CredentialFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return credential.Credential{}, &Error{Code: errcode.NoCredential, Cause: err,
				Msg: fmt.Sprintf("no Conjur credential yet: the credential file %s does not exist; create it (readable by the plugin only) with the API key of %s, or run the bootstrap agent to hand the credential over", s.cfg.CredentialFile, s.cfg.Login)}
		}
		return credential.Credential{}, &Error{Code: errcode.NoCredential, Cause: err,
			Msg: fmt.Sprintf("the credential file %s cannot be read: make it a regular file readable by the plugin", s.cfg.CredentialFile)}
	}
	cred, err := credential.ParseFile(data, s.cfg.Login)
	clear(data)
	if err != nil {
		return credential.Credential{}, &Error{Code: errcode.CredentialRejected, Cause: err,
			Msg: fmt.Sprintf("the credential file %s is unusable (%v): put the API key of %s in it, or {\"login\":..,\"api_key\":..}", s.cfg.CredentialFile, err, s.cfg.Login)}
	}
	if cred.APIKey != "" && s.cfg.Login != "" && cred.Login != s.cfg.Login {
		return credential.Credential{}, &Error{Code: errcode.CredentialRejected,
			Msg: fmt.Sprintf("the credential file %s is for login %s but this plugin is pinned to %s (CONJUR_AUTHN_LOGIN): put the credential of %s in it", s.cfg.CredentialFile, cred.Login, s.cfg.Login, s.cfg.Login)}
	}
	return cred, nil
}

// credentialFileState says, for the status, what the credential file holds
// before the plugin has used it: ready (with the login and fingerprint it
// would use) or what is wrong with it. "" once a credential from the file
// was used (the status shows that one), or without a credential file.
func (s *session) credentialFileState(st *Status) string {
	if s.cfg.CredentialFile == "" || st.CredentialSource != "file" || st.CredentialFingerprint != "" {
		return ""
	}
	cred, err := s.readCredentialFile()
	if err != nil {
		return "[" + string(err.Code) + "] " + err.Msg
	}
	return fmt.Sprintf("ready, not used yet: %s holds the credential of %s (fingerprint %s); the plugin reads it at its first request to Conjur", s.cfg.CredentialFile, cred.Login, cred.Fingerprint())
}

func (s *session) noCredential() *Error {
	who := s.cfg.Login
	if who == "" {
		who = "the plugin"
	}
	return &Error{Code: errcode.NoCredential,
		Msg: fmt.Sprintf("no Conjur credential yet for %s: run the bootstrap agent to hand one over, or set CONJUR_SWARM_CREDENTIAL_FILE", who)}
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, credential.MaxSize+1)
	n, err := readFull(f, buf)
	if err != nil {
		return nil, err
	}
	if n > credential.MaxSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, credential.MaxSize)
	}
	return buf[:n], nil
}

// authenticate obtains an access token from ep with cred. Refusals come back
// as *Error (answers); transport failures and 5xx as they are (failures).
func (s *session) authenticate(ctx context.Context, ep *endpoint, cred credential.Credential) (*accessToken, error) {
	if !cred.MayGoTo(ep.url) { // the one place a credential leaves: never to a URL it does not name
		return nil, &scopeError{url: ep.url}
	}
	var raw []byte
	var err error
	switch {
	case s.cfg.AuthnType == AuthnCert:
		raw, err = s.certAuthenticate(ctx, ep)
	case s.cfg.AuthnType == AuthnIAM:
		raw, err = s.iamAuthenticate(ctx, ep)
	case s.cfg.AuthnType != "": // azure, gcp
		raw, err = s.cloudAuthenticate(ctx, ep)
	case cred.JWT != "":
		if ep.jwtAPI == nil {
			return nil, &Error{Code: errcode.CredentialRejected,
				Msg: "a JWT credential was given but CONJUR_AUTHN_JWT_SERVICE_ID is not set: set the authn-jwt service id"}
		}
		raw, err = s.bind(ctx, ep.jwtAPI, nil).jwtAuthenticate(cred.JWT.Reveal(), s.cfg.JWTHostID)
	default:
		raw, err = s.bind(ctx, ep.api, nil).authenticate(authnLoginPair(cred))
	}
	if err != nil {
		if st := httpStatus(err); st != 0 && isAuthRefusal(st) {
			return nil, s.refused(ep, cred, st, err)
		}
		return nil, err
	}
	tok, err := parseAccessToken(raw, s.now())
	if err != nil {
		return nil, &Error{Code: errcode.AuthRefused, Cause: err,
			Msg: fmt.Sprintf("Conjur at %s answered authentication with an unreadable access token: check CONJUR_APPLIANCE_URL points at Conjur", ep.url)}
	}
	tok.base, tok.api = ep.api, withToken(ep.api, tok.raw)
	return tok, nil
}

// scopeError: the credential in use does not name this URL, so it is not
// sent there. A failure of the URL for failover (the next one is tried).
type scopeError struct{ url string }

func (e *scopeError) Error() string {
	return "the credential in use does not name " + e.url + " in its appliance_url: not sent there"
}

// scope is the credential whose URLs a request may go to now: the handoff
// in force, or none (every URL).
func (s *session) scope() credential.Credential {
	s.creds.mu.Lock()
	defer s.creds.mu.Unlock()
	if h := s.creds.handoff; h != nil {
		return credential.Credential{ApplianceURLs: h.ApplianceURLs}
	}
	return credential.Credential{}
}

func isAuthRefusal(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

func (s *session) refused(ep *endpoint, cred credential.Credential, status int, cause error) *Error {
	if s.who != nil {
		return s.who.refused(ep.url, s.cfg.JWTServiceID, status, cause)
	}
	if s.cfg.AuthnType == AuthnIAM {
		return s.iamRefused(ep.url, status, cause)
	}
	if s.cfg.AuthnType == AuthnAzure || s.cfg.AuthnType == AuthnGCP {
		svc := "authn-gcp"
		if s.cfg.AuthnType == AuthnAzure {
			svc = "authn-azure/" + s.cfg.ServiceID
		}
		return &Error{Code: errcode.AuthRefused, Cause: cause,
			Msg: fmt.Sprintf("Conjur at %s refused this VM's %s token for %s at %s (HTTP %d): check that the authenticator is enabled, and that the host's %s annotations name this VM's identity and it may authenticate", ep.url, cloudName(s.cfg.AuthnType), s.cfg.Login, svc, status, svc)}
	}
	if s.cfg.AuthnType == AuthnCert {
		return &Error{Code: errcode.AuthRefused, Cause: cause,
			Msg: fmt.Sprintf("Conjur at %s refused the node certificate for %s at authn-cert/%s (HTTP %d): check that the webservice is enabled, that its ca-cert variable holds the swarm root CA (docker swarm ca), and that the host is annotated authn-cert/cn with this node's id (docker info -f '{{.Swarm.NodeID}}') and may authenticate", ep.url, s.cfg.Login, s.cfg.ServiceID, status)}
	}
	if cred.JWT != "" {
		src := "the handed-over JWT"
		if s.cfg.JWTTokenPath != "" {
			src = "the JWT from " + s.cfg.JWTTokenPath
		}
		return &Error{Code: errcode.AuthRefused, Cause: cause,
			Msg: fmt.Sprintf("Conjur at %s refused %s for authn-jwt/%s (HTTP %d): check that the JWT is current, that the authenticator is enabled, and that its claims match a host permitted to authenticate", ep.url, src, s.cfg.JWTServiceID, status)}
	}
	if status == http.StatusNotFound {
		return &Error{Code: errcode.AuthRefused, Cause: cause,
			Msg: fmt.Sprintf("Conjur at %s does not know account %q (HTTP 404 on authentication): check CONJUR_ACCOUNT", ep.url, s.cfg.Account)}
	}
	return &Error{Code: errcode.AuthRefused, Cause: cause,
		Msg: fmt.Sprintf("Conjur at %s refused to authenticate %s (HTTP %d): the API key is wrong or was rotated; hand the current credential over again (bootstrap agent) or update the credential file", ep.url, cred.Login, status)}
}

// authCall is one authentication in flight for an endpoint; callers wait on done.
type authCall struct {
	done chan struct{}
	tok  *accessToken
	err  error
	gen  uint64 // the credential generation it used
}

// token returns a usable access token for ep. It authenticates when there is
// none, when it is near expiry, or when stale is the current token (Conjur
// answered 401 with it). Only one authentication per URL runs at a time;
// concurrent callers wait for it, each honouring its own ctx. Between 80% and
// 95% of the lifetime the current token is returned and a refresh starts in
// the background.
func (s *session) token(ctx context.Context, ep *endpoint, stale *accessToken) (*accessToken, error) {
	s.creds.mu.Lock()
	gen := s.creds.gen
	s.creds.mu.Unlock()
	now := s.now()
	ep.mu.Lock()
	t := ep.tok
	if t != nil && t.gen == gen && t != stale && now.Before(t.staleAt) {
		if !now.Before(t.refreshAt) {
			s.startAuthLocked(ep)
		}
		ep.mu.Unlock()
		return t, nil
	}
	if t != nil && t == stale {
		ep.tok = nil
	}
	call := s.startAuthLocked(ep)
	ep.mu.Unlock()
	if call == nil {
		return nil, errClosed
	}
	select {
	case <-call.done:
		s.creds.mu.Lock()
		superseded := call.gen != s.creds.gen
		s.creds.mu.Unlock()
		if superseded { // a handoff replaced the credential it used: authenticate with the current one
			return s.token(ctx, ep, stale)
		}
		if call.err != nil && t != nil && t != stale && t.gen == gen && s.now().Before(t.expiresAt) {
			return t, nil // the refresh failed but the token in hand has not expired: use it
		}
		return call.tok, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startAuthLocked joins or starts the endpoint's authentication. ep.mu is held.
func (s *session) startAuthLocked(ep *endpoint) *authCall {
	if ep.auth != nil {
		return ep.auth
	}
	call := &authCall{done: make(chan struct{})}
	ok := s.life.spawn(func() {
		ctx, cancel := context.WithTimeout(s.life.ctx, s.cfg.FetchTimeout)
		defer cancel()
		use, err := s.credential()
		var tok *accessToken
		if err == nil {
			tok, err = s.authenticate(ctx, ep, use.cred)
		}
		if err != nil {
			s.log.Debug("conjur authentication failed", zap.String("url", ep.url), zap.String("source", use.source), zap.Error(err))
		}
		if tok != nil {
			tok.gen = use.gen
			s.noteCredential(use.source, use.cred)
			s.log.Debug("conjur access token obtained", zap.String("url", ep.url), zap.String("source", use.source),
				zap.Time("expires", tok.expiresAt))
		}
		ep.mu.Lock()
		s.creds.mu.Lock()
		current := s.creds.gen
		s.creds.mu.Unlock()
		if tok != nil && tok.gen == current {
			ep.tok = tok
		}
		ep.auth = nil
		ep.mu.Unlock()
		call.tok, call.err, call.gen = tok, err, use.gen
		close(call.done)
	})
	if !ok {
		return nil
	}
	ep.auth = call
	return call
}

func (s *session) noteCredential(source string, cred credential.Credential) {
	fp := cred.Fingerprint()
	s.creds.mu.Lock()
	if s.creds.used.fingerprint != fp || s.creds.used.source != source {
		s.creds.used = credUse{source: source, login: cred.Login, fingerprint: fp, setAt: s.now()}
	}
	s.creds.mu.Unlock()
}

// adopt is the handoff: it accepts cred only for the configured login,
// authenticates with it first (failing over like a fetch), and only then makes
// it the credential in use. On any error the previous credential stays.
func (s *session) adopt(ctx context.Context, cred credential.Credential) error {
	switch {
	case s.life.isClosed():
		return errClosed
	case s.cfg.AuthnType != "":
		return &Error{Code: errcode.CredentialRejected, Msg: fmt.Sprintf("this plugin logs in with %s (CONJUR_AUTHN_TYPE=%s) and takes no handed-over credential: stop the bootstrap agent for it", ownIdentity(s.cfg.AuthnType), s.cfg.AuthnType)}
	case cred.IsZero():
		return &Error{Code: errcode.CredentialRejected, Msg: "the handed-over credential is empty: give {\"login\":..,\"api_key\":..} or {\"jwt\":..}"}
	case cred.JWT != "" && s.cfg.JWTServiceID == "":
		return &Error{Code: errcode.CredentialRejected, Msg: "a JWT was handed over but CONJUR_AUTHN_JWT_SERVICE_ID is not set: set the authn-jwt service id, or hand over an API key"}
	case cred.JWT == "" && s.cfg.Login == "":
		return &Error{Code: errcode.CredentialRejected, Msg: fmt.Sprintf("a credential for %s was handed over but CONJUR_AUTHN_LOGIN is not set: pin the plugin's login first", cred.Login)}
	case cred.JWT == "" && cred.Login != s.cfg.Login:
		return &Error{Code: errcode.CredentialRejected, Msg: fmt.Sprintf("the handed-over credential is for %s but this plugin accepts only %s (CONJUR_AUTHN_LOGIN): hand over the credential of %s, or change the setting", cred.Login, s.cfg.Login, s.cfg.Login)}
	case !slices.ContainsFunc(s.eps, func(ep *endpoint) bool { return cred.MayGoTo(ep.url) }):
		return &Error{Code: errcode.CredentialRejected, Msg: fmt.Sprintf("the handed-over credential names %s (appliance_url), none of this plugin's URLs %s (CONJUR_APPLIANCE_URL): hand over the credential of this plugin's Conjur", strings.Join(cred.ApplianceURLs, ","), strings.Join(s.cfg.ApplianceURLs, ","))}
	}

	fp := cred.Fingerprint()
	s.creds.mu.Lock()
	same := s.creds.handoff != nil && s.creds.handoff.Fingerprint() == fp
	gen := s.creds.gen
	s.creds.mu.Unlock()
	if same && s.hasLiveToken(gen) {
		return nil
	}

	if !s.life.enter() { // Close waits for it and cancels it, as it does fetches
		return errClosed
	}
	defer s.life.done()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	defer context.AfterFunc(s.life.ctx, cancel)()
	var tok *accessToken
	var tokEP *endpoint
	_, err := s.withFailoverFor(ctx, cred, func(ctx context.Context, ep *endpoint) error {
		t, err := s.authenticate(ctx, ep, cred)
		if err == nil {
			tok, tokEP = t, ep
		}
		return err
	})
	if err != nil {
		return s.finalError(ctx, err, "")
	}
	// A JWT names no login: Conjur decides whom it authenticates (the host
	// id, or the token's claims). Hold it to the pinned login too.
	if cred.JWT != "" && s.cfg.Login != "" {
		if sub := tokenSubject(tok.raw); sub != s.cfg.Login {
			if sub == "" {
				sub = "an identity the access token does not name"
			}
			return &Error{Code: errcode.CredentialRejected, Msg: fmt.Sprintf("the handed-over JWT authenticates as %s but this plugin accepts only %s (CONJUR_AUTHN_LOGIN): hand over a JWT of %s, or change the setting", sub, s.cfg.Login, s.cfg.Login)}
		}
	}

	held := cred
	s.creds.mu.Lock()
	s.creds.handoff = &held
	s.creds.handoffAt = s.now()
	s.creds.gen++
	tok.gen = s.creds.gen
	s.creds.used = credUse{source: "handoff", login: cred.Login, fingerprint: fp, setAt: s.creds.handoffAt}
	s.creds.mu.Unlock()
	tokEP.mu.Lock()
	tokEP.tok = tok
	tokEP.mu.Unlock()
	s.log.Info("conjur credential adopted from handoff", zap.Object("credential", cred), zap.String("url", tokEP.url))
	return nil
}

func (s *session) hasLiveToken(gen uint64) bool {
	now := s.now()
	for _, ep := range s.eps {
		ep.mu.Lock()
		ok := ep.tok != nil && ep.tok.gen == gen && now.Before(ep.tok.staleAt)
		ep.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}
