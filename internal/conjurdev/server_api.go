package conjurdev

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// ExpireTokens makes every access token issued so far invalid (401).
func (s *Server) ExpireTokens() {
	if err := s.tokens.rotate(); err != nil {
		// crypto/rand does not fail on supported platforms; keep the old
		// key rather than serve without one.
		s.log.Error("rotate the token key", zap.Error(err))
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.saveLocked()
}

// LoadConjurPolicy loads a policy document as the admin user. branch is "root"
// or a policy id such as "apps/x".
func (s *Server) LoadConjurPolicy(mode LoadMode, branch string, body []byte) (LoadResult, error) {
	switch mode {
	case ModePost, ModePatch, ModePut:
	default:
		return LoadResult{}, fmt.Errorf("conjurdev: load mode %q: want POST, PATCH or PUT", mode)
	}
	if !s.loadMu.TryLock() {
		return LoadResult{}, errConflict()
	}
	defer s.loadMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	full, err := s.branchID(branch)
	if err != nil {
		return LoadResult{}, err
	}
	res, err := s.loadConjurPolicyLocked(mode, full, body)
	if err == nil {
		s.st.notePolicyVersion(full, res.Version, body, s.st.fullID("user", "admin"), "127.0.0.1", s.now())
	}
	return res, err
}

// branchID turns "root", "apps/x" or "acct:policy:apps/x" into a full
// policy id of an existing policy. The caller holds s.mu.
func (s *Server) branchID(branch string) (string, error) {
	if _, kind, ident, ok := splitID(branch); ok && kind == "policy" {
		branch = ident
	}
	branch = strings.Trim(branch, "/")
	if branch == "" {
		branch = "root"
	}
	full := s.st.fullID("policy", branch)
	if _, ok := s.st.resources[full]; !ok {
		return "", notFound(full)
	}
	return full, nil
}

// roleID turns "host:x", "acct:host:x", "host/x" or "admin" into a full
// role id.
func (s *Server) roleID(id string) string {
	if _, _, _, ok := splitID(id); ok {
		return id
	}
	if kind, ident, ok := strings.Cut(id, ":"); ok {
		return s.st.fullID(kind, ident)
	}
	return s.loginRole(id)
}

// loginRole maps a login ("host/apps/x" or a user name) to a full role id.
func (s *Server) loginRole(login string) string {
	if kind, ident, ok := strings.Cut(login, "/"); ok && roleKinds[kind] && kind != "policy" {
		return s.st.fullID(kind, ident)
	}
	return s.st.fullID("user", login)
}

// loginOf maps a full role id to its login.
func loginOf(full string) string {
	_, kind, ident, _ := splitID(full)
	if kind == "user" {
		return ident
	}
	return kind + "/" + ident
}

// SetSecret stores a new value of a variable ("apps/demo/db-password").
func (s *Server) SetSecret(variableID string, value []byte) error {
	if len(value) == 0 {
		return errors.New("conjurdev: set secret: the value is empty (Conjur refuses empty values)")
	}
	full := s.st.fullID("variable", strings.TrimPrefix(variableID, s.account+":variable:"))
	s.mu.Lock()
	defer s.mu.Unlock()
	res, ok := s.st.resources[full]
	if !ok {
		return fmt.Errorf("conjurdev: set secret: %w", notFound(full))
	}
	res.addValue(value)
	s.saveLocked()
	return nil
}

// APIKey is the API key of a user or host ("host:swarm/x" or
// "dev:host:swarm/x").
func (s *Server) APIKey(roleID string) (string, error) {
	full := s.roleID(roleID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	res, ok := s.st.resources[full]
	if !ok || (res.kind != "user" && res.kind != "host") {
		return "", fmt.Errorf("conjurdev: API key of %q: %w", roleID, notFound(full))
	}
	return res.apiKey, nil
}

// RotateAPIKey gives a user or host a new API key and returns it.
func (s *Server) RotateAPIKey(roleID string) (string, error) {
	full := s.roleID(roleID)
	s.mu.Lock()
	defer s.mu.Unlock()
	res, ok := s.st.resources[full]
	if !ok || (res.kind != "user" && res.kind != "host") {
		return "", fmt.Errorf("conjurdev: rotate the API key of %q: %w", roleID, notFound(full))
	}
	return s.rotateLocked(res)
}

func (s *Server) rotateLocked(res *resource) (string, error) {
	key, err := newAPIKey()
	if err != nil {
		return "", fmt.Errorf("conjurdev: generate an API key: %w", err)
	}
	res.apiKey = key
	if res.id == s.st.fullID("user", "admin") {
		s.adminKey.Store(&key)
	}
	s.saveLocked()
	return key, nil
}

// newAPIKey returns a random key in Conjur's style: 55 characters of a
// lower-case base32 alphabet.
func newAPIKey() (string, error) {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	b := make([]byte, 55)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
