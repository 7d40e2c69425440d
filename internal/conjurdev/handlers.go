package conjurdev

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// maxBody bounds request bodies (policies and values).
const maxBody = 10 << 20

var _ http.Handler = (*Server)(nil)

// ServeHTTP answers one request of the Conjur API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.prefix != "" && r.URL.Path != s.prefix && !strings.HasPrefix(r.URL.Path, s.prefix+"/") {
		s.counts[EpOther].Add(1)
		noRoute(w, r) // outside the prefix: Conjur Cloud has nothing there
		return
	}
	s.handler.ServeHTTP(w, r)
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.handle("GET /{$}", EpInfo, false, s.root)
	s.handle("GET /authenticators", EpAuthenticators, false, s.listAuthenticators)

	s.handle("POST /authn/{account}/{rest...}", EpAuthn, false, s.authenticate)
	s.handle("GET /authn/{account}/login", EpLogin, false, s.login)
	s.handle("PUT /authn/{account}/api_key", EpRotate, true, s.rotate)
	s.handle("PUT /authn/{account}/password", EpRotate, true, s.updatePassword)

	s.handle("POST /authn-jwt/{service}/{account}/authenticate", EpAuthnJWT, false, s.authenticateJWT)
	s.handle("POST /authn-jwt/{service}/{account}/{id}/authenticate", EpAuthnJWT, false, s.authenticateJWT)
	for _, a := range installedAuthenticators[1:] {
		s.handle("PATCH /"+a+"/{service}/{account}", EpAuthenticators, true, s.authed(s.updateAuthenticator))
		s.handle("GET /"+a+"/{service}/{account}/status", EpAuthenticators, false, s.authed(s.authenticatorStatus))
	}

	s.cloudRoutes()
	s.handle("POST /host_factory_tokens", EpHostFactory, true, s.authed(s.createHFTokens))
	s.handle("DELETE /host_factory_tokens/{token}", EpHostFactory, true, s.authed(s.deleteHFToken))
	s.handle("POST /host_factories/hosts", EpHostFactory, true, s.createHFHost)

	s.handle("GET /secrets/{account}/{kind}/{id...}", EpSecret, false, s.authed(s.getSecret))
	s.handle("POST /secrets/{account}/{kind}/{id...}", EpSecretSet, true, s.authed(s.setSecret))
	s.handle("GET /secrets", EpBatch, false, s.authed(s.batch))
	s.handle("GET /secrets/{$}", EpBatch, false, s.authed(s.batch))

	for _, m := range []string{"POST", "PATCH", "PUT"} {
		s.handle(m+" /policies/{account}/policy/{id...}", EpPolicy, true, s.authed(s.loadConjurPolicyHTTP))
	}

	s.handle("GET /resources/{account}", EpResources, false, s.authed(s.listResources))
	s.handle("GET /resources/{account}/{$}", EpResources, false, s.authed(s.listResources))
	s.handle("GET /resources/{account}/{kind}", EpResources, false, s.authed(s.listResources))
	s.handle("GET /resources/{account}/{kind}/{id...}", EpResources, false, s.authed(s.showResource))
	s.handle("GET /whoami", EpWhoami, false, s.authed(s.whoami))
	s.handle("GET /roles/{account}/{kind}/{id...}", EpRoles, false, s.authed(s.showRole))

	s.handle("/", EpOther, false, noRoute)
}

// noRoute is the answer for a path Conjur has no route for.
func noRoute(w http.ResponseWriter, r *http.Request) {
	writeError(w, &StatusError{Status: http.StatusNotFound, Code: "not_found", Message: "No route matches [" + r.Method + "] " + r.URL.Path})
}

// caller is the authenticated role of a request.
type caller struct {
	role string // full role id
	iat  int64
}

type authedHandler func(w http.ResponseWriter, r *http.Request, c caller)

// authed checks the access token of every request before h runs.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		claims, err := s.tokens.parseAuthorization(r.Header.Get("Authorization"), s.now())
		if err != nil {
			unauthorized(w, err.Error())
			return
		}
		role := s.loginRole(claims.Sub)
		s.mu.RLock()
		_, exists := s.st.resources[role]
		s.mu.RUnlock()
		if !exists {
			unauthorized(w, errTokenInvalid.Error())
			return
		}
		noteRole(w, role)
		h(w, r, caller{role: role, iat: claims.Iat})
	}
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	if msg != "" {
		_, _ = io.WriteString(w, msg)
	}
}

func writeError(w http.ResponseWriter, e *StatusError) {
	if e.yamlSyntax {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(e.Status)
		return
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(e.body())
}

// writeErr answers err: a *StatusError as itself, anything else 500.
func (s *Server) writeErr(w http.ResponseWriter, err error) {
	var se *StatusError
	if errors.As(err, &se) {
		writeError(w, se)
		return
	}
	s.log.Error("internal error", zap.Error(err))
	writeError(w, &StatusError{Status: http.StatusInternalServerError, Code: "internal_error", Message: "internal error in the dev server; see its log"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(marshalJSON(v))
}

// marshalJSON is v in JSON as Rails renders it: no HTML escaping.
func marshalJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func argumentError(msg string) *StatusError {
	return &StatusError{Status: http.StatusUnprocessableEntity, Code: "argument_error", Message: msg}
}

func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, map[string]string{"version": Version})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = fmt.Fprintf(w, `<!DOCTYPE html>
<html><head><title>Conjur Status</title></head>
<body><h1>Conjur (conjur-swarm dev server)</h1>
<dl><dt>Account</dt><dd>%s</dd><dt>Version</dt><dd>Version %s</dd></dl>
<p>An in-memory development server. Nothing here is persistent or secret.</p>
</body></html>
`, s.account, Version)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, c caller) {
	ip := clientIP(r)
	type who struct {
		ClientIP      string `json:"client_ip"`
		UserAgent     string `json:"user_agent"`
		Account       string `json:"account"`
		Username      string `json:"username"`
		TokenIssuedAt string `json:"token_issued_at"`
	}
	writeJSON(w, http.StatusOK, who{
		ClientIP: ip, UserAgent: r.UserAgent(), Account: s.account, Username: loginOf(c.role),
		TokenIssuedAt: time.Unix(c.iat, 0).UTC().Format("2006-01-02T15:04:05.000+00:00"),
	})
}
