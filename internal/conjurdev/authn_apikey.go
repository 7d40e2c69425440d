package conjurdev

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// acceptsBase64 is how authentication reads Accept-Encoding: base64 is
// one of the comma-separated encodings.
func acceptsBase64(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(enc), "base64") {
				return true
			}
		}
	}
	return false
}

func (s *Server) authnEnabled(name string) bool {
	return s.authenticators[name]
}

// writeToken issues an access token for login, as raw JSON or base64,
// once every authenticator's last check passes: the client's address must
// be inside the role's restricted_to (401 otherwise, as Conjur answers).
func (s *Server) writeToken(w http.ResponseWriter, r *http.Request, login string) {
	if ip := clientIP(r); !s.originAllowed(s.loginRole(login), ip) {
		s.logOriginRefused(login, ip)
		unauthorized(w, "")
		return
	}
	tok := s.tokens.issue(login, s.now(), s.ttl)
	if acceptsBase64(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Encoding", "base64")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, base64.StdEncoding.EncodeToString(tok))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(tok)
}

// checkAPIKey reports whether key is the API key of login's user or host.
func (s *Server) checkAPIKey(login, key string) (string, bool) {
	role := s.loginRole(login)
	s.mu.RLock()
	defer s.mu.RUnlock()
	res, ok := s.st.resources[role]
	if !ok || res.apiKey == "" || key == "" {
		return role, false
	}
	return role, subtle.ConstantTimeCompare([]byte(res.apiKey), []byte(key)) == 1
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) {
	login, ok := strings.CutSuffix(r.PathValue("rest"), "/authenticate")
	if !ok || login == "" {
		writeError(w, &StatusError{Status: http.StatusNotFound, Code: "not_found", Message: "No route matches [POST] " + r.URL.Path})
		return
	}
	key, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil || r.PathValue("account") != s.account || !s.authnEnabled("authn") {
		unauthorized(w, "")
		return
	}
	if _, ok := s.checkAPIKey(login, string(key)); !ok {
		unauthorized(w, "")
		return
	}
	s.writeToken(w, r, login)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || r.PathValue("account") != s.account || !s.authnEnabled("authn") {
		unauthorized(w, "")
		return
	}
	role, ok := s.checkBasic(user, pass)
	if !ok {
		unauthorized(w, "")
		return
	}
	s.mu.RLock()
	key := s.st.resources[role].apiKey
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, key)
}

// rotate answers PUT /authn/{account}/api_key as Conjur's credentials
// controller does: a role rotates its own key only with Basic credentials
// (its API key), never with an access token ("Credential strength is
// insufficient"); another role's key (?role=KIND:ID) only with an access
// token and update on that role ("Operation attempted against foreign
// user" with Basic). Only users and hosts have keys (405 otherwise).
func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	var self string
	basic := false
	if user, pass, ok := r.BasicAuth(); ok {
		role, ok := s.checkBasic(user, pass)
		if !ok || r.PathValue("account") != s.account {
			unauthorized(w, "")
			return
		}
		self, basic = role, true
	} else if h := r.Header.Get("Authorization"); h != "" {
		claims, err := s.tokens.parseAuthorization(h, s.now())
		if err != nil {
			unauthorized(w, err.Error())
			return
		}
		self = s.loginRole(claims.Sub)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.resources[self]; !ok {
		unauthorized(w, "") // Conjur: "Client not authenticated", no body
		return
	}
	target := self
	if q := r.URL.Query().Get("role"); q != "" {
		full, err := s.st.makeFullID(q, r.PathValue("account"))
		if err != nil {
			writeError(w, err)
			return
		}
		if _, ok := s.st.resources[full]; !ok {
			writeError(w, requestedNotFound(q, self))
			return
		}
		target = full
	}
	res := s.st.resources[target]
	if target == self && !basic {
		writeError(w, &StatusError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "Credential strength is insufficient"})
		return
	}
	if target != self {
		if basic {
			unauthorized(w, "") // "Operation attempted against foreign user"
			return
		}
		if !s.st.visible(self, res) {
			writeError(w, requestedNotFound(target, self))
			return
		}
		if !s.st.can(self, res, "update") {
			w.WriteHeader(http.StatusForbidden)
			return
		}
	}
	if res.kind != "user" && res.kind != "host" {
		writeError(w, &StatusError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: fmt.Sprintf("CONJ00126E Role '%s' is not applicable for key rotation", target)})
		return
	}
	key, err := s.rotateLocked(res)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, key)
}

// requestedNotFound is Conjur's CONJ00123E answer for a role or resource
// that does not exist or that the caller cannot see.
func requestedNotFound(id, by string) *StatusError {
	return &StatusError{Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("CONJ00123E Resource '%s' requested by role '%s' not found", id, by)}
}
