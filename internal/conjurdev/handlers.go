package conjurdev

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
		noteRole(r, role)
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
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimRight(buf.Bytes(), "\n"))
}

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

// batchWantsBase64 is how the batch endpoint reads it, as Conjur does:
// the whole header must be "base64".
func batchWantsBase64(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("Accept-Encoding")), "base64")
}

// rubyBase64 encodes as Ruby's Base64.encode64, which Conjur's batch
// endpoint uses: standard alphabet, a newline after every 60 characters
// and at the end. Decoders ignore the newlines.
func rubyBase64(b []byte) string {
	enc := base64.StdEncoding.EncodeToString(b)
	var sb strings.Builder
	for len(enc) > 60 {
		sb.WriteString(enc[:60])
		sb.WriteByte('\n')
		enc = enc[60:]
	}
	sb.WriteString(enc)
	sb.WriteByte('\n')
	return sb.String()
}

// ---- authn ----

func (s *Server) authnEnabled(name string) bool {
	return s.authenticators[name]
}

// writeToken issues an access token for login, as raw JSON or base64.
func (s *Server) writeToken(w http.ResponseWriter, r *http.Request, login string) {
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

func argumentError(msg string) *StatusError {
	return &StatusError{Status: http.StatusUnprocessableEntity, Code: "argument_error", Message: msg}
}

// ---- secrets ----

func secretNotFound(full string) *StatusError {
	return &StatusError{
		Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("CONJ00076E Variable %s is empty or not found.", full),
	}
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request, c caller) {
	if r.PathValue("kind") != "variable" {
		noRoute(w, r) // Conjur routes only variables here
		return
	}
	full := r.PathValue("account") + ":" + r.PathValue("kind") + ":" + r.PathValue("id")
	noteVariables(r, []string{full})
	version := 0
	if r.URL.Query().Has("version") {
		// Conjur: Integer(version); a version that does not parse is 422,
		// one that does not exist (0 and negatives included) is 404.
		v := r.URL.Query().Get("version")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			writeError(w, argumentError("invalid type for parameter 'version'"))
			return
		}
		if n < 1 {
			writeError(w, secretNotFound(full))
			return
		}
		version = n
	}
	s.mu.RLock()
	res, ok := s.st.resources[full]
	if !ok || !s.st.visible(c.role, res) {
		s.mu.RUnlock()
		writeError(w, secretNotFound(full))
		return
	}
	if !s.st.can(c.role, res, "execute") {
		s.mu.RUnlock()
		w.WriteHeader(http.StatusForbidden)
		return
	}
	var sv secretVersion
	if version == 0 {
		sv, ok = res.latest()
	} else {
		sv, ok = res.version(version)
	}
	mime := res.mimeType()
	s.mu.RUnlock()
	if !ok {
		writeError(w, secretNotFound(full))
		return
	}
	// Stored values are never modified in place, so writing after the
	// unlock is safe.
	w.Header().Set("Content-Type", mime)
	w.Header().Set("Content-Length", strconv.Itoa(len(sv.value)))
	_, _ = w.Write(sv.value)
}

// blank is Ruby's String#blank?: empty or only whitespace.
func blank(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	return len(bytes.TrimFunc(b, unicode.IsSpace)) == 0
}

func (s *Server) setSecret(w http.ResponseWriter, r *http.Request, c caller) {
	if r.PathValue("kind") != "variable" {
		noRoute(w, r) // Conjur takes values for variables and public keys only
		return
	}
	full := r.PathValue("account") + ":" + r.PathValue("kind") + ":" + r.PathValue("id")
	value, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeError(w, &StatusError{Status: http.StatusBadRequest, Code: "bad_request", Message: "could not read the value"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, ok := s.st.resources[full]
	if !ok || !s.st.visible(c.role, res) {
		writeError(w, notFound(full))
		return
	}
	if !s.st.can(c.role, res, "update") {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if blank(value) {
		writeError(w, &StatusError{Status: http.StatusUnprocessableEntity, Code: "argument_error", Message: "'value' may not be empty"})
		return
	}
	if len(value) > maxBody {
		writeError(w, &StatusError{Status: http.StatusRequestEntityTooLarge, Code: "argument_error", Message: "the value is larger than 10 MiB"})
		return
	}
	res.addValue(value)
	s.saveLocked()
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request, c caller) {
	raw := r.URL.Query().Get("variable_ids")
	ids := strings.Split(raw, ",")
	for len(ids) > 0 && ids[len(ids)-1] == "" { // as Ruby's String#split
		ids = ids[:len(ids)-1]
	}
	noteVariables(r, ids)
	if len(ids) == 0 || slices.Contains(ids, "") {
		writeError(w, argumentError("variable_ids"))
		return
	}
	// As Conjur: find the ids that exist (any kind), refuse the whole batch
	// with 403 when the caller lacks execute on any of them, and only then
	// answer 404 for the first id that does not exist. A repeated id counts
	// as missing (Conjur compares the number of ids with the number of rows
	// found, and then names none of them).
	b64 := batchWantsBase64(r)
	s.mu.RLock()
	var vars []*resource
	seen := map[string]bool{}
	for _, id := range ids {
		if res, ok := s.st.resources[id]; ok && !seen[id] {
			vars = append(vars, res)
		}
		seen[id] = true
	}
	for _, res := range vars {
		if !s.st.can(c.role, res, "execute") {
			s.mu.RUnlock()
			w.WriteHeader(http.StatusForbidden)
			return
		}
	}
	if len(vars) != len(ids) {
		missing := ""
		for _, id := range ids {
			if _, ok := s.st.resources[id]; !ok {
				missing = id
				break
			}
		}
		s.mu.RUnlock()
		writeError(w, secretNotFound(missing))
		return
	}
	out := make(map[string]string, len(vars))
	for _, res := range vars {
		sv, ok := res.latest()
		if !ok {
			s.mu.RUnlock()
			writeError(w, secretNotFound(res.id))
			return
		}
		switch {
		case b64:
			out[res.id] = rubyBase64(sv.value)
		case !utf8.Valid(sv.value):
			s.mu.RUnlock()
			writeError(w, &StatusError{Status: http.StatusNotAcceptable, Code: "not_acceptable",
				Message: "CONJ00074E Issue encoding secret into JSON format, try including 'Accept-Encoding: base64' header in request."})
			return
		default:
			out[res.id] = string(sv.value)
		}
	}
	s.mu.RUnlock()
	if b64 {
		w.Header().Set("Content-Encoding", "base64")
	}
	writeJSON(w, http.StatusOK, out)
}

// ---- policies ----

func (s *Server) loadConjurPolicyHTTP(w http.ResponseWriter, r *http.Request, c caller) {
	mode := LoadMode(r.Method)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeError(w, &StatusError{Status: http.StatusUnprocessableEntity, Code: "argument_error", Message: "the policy could not be read or is larger than 10 MiB"})
		return
	}
	if r.PathValue("account") != s.account {
		writeError(w, notFound(r.PathValue("account")+":policy:"+r.PathValue("id")))
		return
	}
	if r.URL.Query().Get("dryRun") == "true" {
		s.dryRun(w, r, c, mode, body)
		return
	}
	if !s.loadMu.TryLock() {
		writeError(w, errConflict())
		return
	}
	defer s.loadMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	branch, ok := s.mayLoad(w, r, c, mode)
	if !ok {
		return
	}
	res, err := s.loadConjurPolicyLocked(mode, branch, body)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	type createdRole struct {
		ID     string `json:"id"`
		APIKey string `json:"api_key"`
	}
	created := map[string]createdRole{}
	for id, key := range res.CreatedRoles {
		created[id] = createdRole{ID: id, APIKey: key.Reveal()}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"created_roles": created, "version": res.Version})
}

// mayLoad resolves the request's policy branch and checks that the caller
// may load into it with mode (create for POST, update otherwise), answering
// 404 when the branch is invisible and 403 when it lacks the privilege.
// s.mu must be held.
func (s *Server) mayLoad(w http.ResponseWriter, r *http.Request, c caller, mode LoadMode) (string, bool) {
	branch, err := s.branchID(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return "", false
	}
	pol := s.st.resources[branch]
	if !s.st.visible(c.role, pol) {
		writeError(w, notFound(branch))
		return "", false
	}
	priv := "update"
	if mode == ModePost {
		priv = "create"
	}
	if !s.st.can(c.role, pol, priv) || (mode == ModePut && !s.mayReplace(c.role, pol)) {
		w.WriteHeader(http.StatusForbidden)
		return "", false
	}
	return branch, true
}

// mayReplace is Conjur's check before a PUT (ReplacePolicy): role needs
// update on the policy and on every resource whose identifier lies under
// the policy's identifier followed by "/", whatever kind it is. s.mu must
// be held.
func (s *Server) mayReplace(role string, pol *resource) bool {
	prefix := pol.ident + "/"
	for _, res := range s.st.resources {
		if strings.HasPrefix(res.ident, prefix) && !s.st.can(role, res, "update") {
			return false
		}
	}
	return true
}

// ---- status ----

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
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
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
