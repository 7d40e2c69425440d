package conjurdev

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

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
		var se *StatusError
		if errors.As(err, &se) && se.yamlSyntax {
			s.log.Info("policy load refused: the document is not YAML (Conjur 1.24 answers 500 with no body)",
				zap.String("policy", branch), zap.String("problem", se.Message))
		}
		s.writeErr(w, err)
		return
	}
	s.st.notePolicyVersion(branch, res.Version, body, c.role, clientIP(r), s.now())
	type createdRole struct {
		ID     string `json:"id"`
		APIKey string `json:"api_key"`
	}
	created := map[string]createdRole{}
	for id, key := range res.CreatedRoles {
		created[id] = createdRole{ID: id, APIKey: key.Reveal()}
	}
	out := map[string]any{"created_roles": created, "version": res.Version}
	if len(res.Warnings) > 0 {
		out["warnings"] = res.Warnings
	}
	writeJSON(w, http.StatusCreated, out)
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
