package conjurdev

import (
	"crypto/subtle"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// User passwords, as Conjur 1.24's CredentialsController#update_password
// and Credentials do: a user sets its own password with Basic
// credentials (its API key or its current password; an access token is
// "Credential strength is insufficient"); hosts have none (403); the
// password must have 12 to 128 characters with 2 upper-case and 2
// lower-case letters, a digit and a special character, and no newline
// (lib/conjur/password.rb; 422 CONJ00046E). Basic logins (GET
// /authn/{account}/login, PUT .../api_key) then take the password as well
// as the API key; POST .../authenticate takes the API key only.

const passwordComplexity = "CONJ00046E The password you have chosen does not meet the complexity requirements. " +
	"Choose a password that includes: 12-128 characters, 2 uppercase letters, 2 lowercase letters, 1 digit and 1 special character"

// checkBasic reports whether secret is the API key or the password of
// login's user or host, as Conjur's Credentials#valid? does.
func (s *Server) checkBasic(login, secret string) (string, bool) {
	if role, ok := s.checkAPIKey(login, secret); ok {
		return role, true
	}
	role := s.loginRole(login)
	s.mu.RLock()
	defer s.mu.RUnlock()
	res, ok := s.st.resources[role]
	if !ok || res.password == "" || secret == "" {
		return role, false
	}
	return role, subtle.ConstantTimeCompare([]byte(res.password), []byte(secret)) == 1
}

// validPassword is Conjur::Password.valid?.
func validPassword(p string) bool {
	n := utf8.RuneCountInString(p)
	if n < 12 || n > 128 || strings.Contains(p, "\n") {
		return false
	}
	var upper, lower, digit, special int
	for _, r := range p {
		switch {
		case r >= 'A' && r <= 'Z':
			upper++
		case r >= 'a' && r <= 'z':
			lower++
		case r >= '0' && r <= '9':
			digit++
		case r < unicode.MaxASCII && strings.ContainsRune(" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r):
			special++
		}
	}
	return upper >= 2 && lower >= 2 && digit >= 1 && special >= 1
}

func (s *Server) updatePassword(w http.ResponseWriter, r *http.Request) {
	user, pass, basic := r.BasicAuth()
	if !basic {
		if h := r.Header.Get("Authorization"); h != "" {
			if _, err := s.tokens.parseAuthorization(h, s.now()); err == nil {
				writeError(w, &StatusError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "Credential strength is insufficient"})
				return
			}
		}
		unauthorized(w, "")
		return
	}
	role, ok := s.checkBasic(user, pass)
	if !ok || r.PathValue("account") != s.account {
		unauthorized(w, "")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		unauthorized(w, "")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, ok := s.st.resources[role]
	switch {
	case !ok:
		unauthorized(w, "")
	case res.kind != "user":
		w.WriteHeader(http.StatusForbidden)
	case !validPassword(string(body)):
		writeError(w, &StatusError{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
			Message: "password " + passwordComplexity, Field: "password", FieldMessage: passwordComplexity})
	default:
		res.password = string(body)
		s.saveLocked()
		w.WriteHeader(http.StatusNoContent)
	}
}
