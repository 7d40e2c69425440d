package conjurdev

import (
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// authnError is one of Conjur's authentication errors: its CONJ code, its
// message (Conjur's wording), the Ruby class Conjur names it with (status
// pages print it) and the HTTP status Conjur's authenticate controller
// answers it with.
type authnError struct {
	status int
	class  string // e.g. "Errors::Authentication::AuthnJwt::IdentityMisconfigured"
	code   string // e.g. "CONJ00098E"
	msg    string
}

func (e *authnError) Error() string {
	if e.code == "" {
		return e.msg
	}
	return e.code + " " + e.msg
}

// inspect is Ruby's Exception#inspect of the error, which Conjur's status
// endpoints put in their "error" field.
func (e *authnError) inspect() string {
	return "#<" + e.class + ": " + e.Error() + ">"
}

// authnErr builds an error answered 401 with an empty body, the answer
// Conjur gives for most authentication failures.
func authnErr(class, code, format string, args ...any) *authnError {
	return &authnError{status: http.StatusUnauthorized, class: class, code: code, msg: fmt.Sprintf(format, args...)}
}

// Conjur's error classes by module, as they appear in inspect().
const (
	errSecurity     = "Errors::Authentication::Security::"
	errJWT          = "Errors::Authentication::AuthnJwt::"
	errJwtToken     = "Errors::Authentication::Jwt::"
	errConstraints  = "Errors::Authentication::Constraints::"
	errRestrictions = "Errors::Authentication::ResourceRestrictions::"
	errConjur       = "Errors::Conjur::"
)

func errAccountNotDefined(account string) *authnError {
	return authnErr(errSecurity+"AccountNotDefined", "CONJ00008E", "Account '%s' is not defined in Conjur", account)
}

func errNotEnabled(name string) *authnError {
	return authnErr(errSecurity+"AuthenticatorNotWhitelisted", "CONJ00004E", "'%s' is not enabled", name)
}

func errWebserviceNotFound(name string) *authnError {
	return authnErr(errSecurity+"WebserviceNotFound", "CONJ00005E", "Webservice '%s' not found", name)
}

func errRoleNotFound(login string) *authnError {
	return authnErr(errSecurity+"RoleNotFound", "CONJ00007E", "'%s' not found", login)
}

// errNotAuthorized is answered 403, the one refusal Conjur does not hide
// behind a 401.
func errNotAuthorized(login, privilege, resourceID string) *authnError {
	e := authnErr(errSecurity+"RoleNotAuthorizedOnResource", "CONJ00006E",
		"'%s' does not have '%s' privilege on %s", login, privilege, resourceID)
	e.status = http.StatusForbidden
	return e
}

func errMissingParam(field string) *authnError {
	e := authnErr("Errors::Authentication::RequestBody::MissingRequestParam", "CONJ00009E",
		"Field '%s' is missing or empty in request body", field)
	e.status = http.StatusBadRequest
	return e
}

func errSecretMissing(fullID string) *authnError {
	return authnErr(errConjur+"RequiredSecretMissing", "CONJ00037E", "Missing value for resource: %s", fullID)
}

// errTokenExpired is the one authentication error whose message Conjur
// sends back in a JSON body.
var errTokenExpired = authnErr(errJwtToken+"TokenExpired", "CONJ00016E", "Token expired")

// refuse answers a failed authentication as Conjur does and logs why at
// info, the way Conjur's log is the only place that says so.
func (s *Server) refuse(w http.ResponseWriter, authenticator string, e *authnError) {
	s.log.Info("authentication refused", zap.String("authenticator", authenticator),
		zap.Int("status", e.status), zap.String("reason", e.Error()))
	if e == errTokenExpired {
		writeError(w, &StatusError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: e.Error()})
		return
	}
	if e.status == http.StatusUnauthorized {
		unauthorized(w, "")
		return
	}
	w.WriteHeader(e.status)
}

// rubyInspect is Ruby's Array#inspect of strings: ["a", "b"].
func rubyInspect(items []string) string {
	quoted := make([]string, len(items))
	for i, it := range items {
		quoted[i] = fmt.Sprintf("%q", it)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// rubyBlank is Ruby's String#blank?: empty or only whitespace.
func rubyBlank(s string) bool { return strings.TrimSpace(s) == "" }

// roleIDFromUsername is Conjur's Role.roleid_from_username: "kind/id"
// names a role of that kind, anything without a "/" a user.
func (s *Server) roleIDFromUsername(login string) string {
	if kind, ident, ok := strings.Cut(login, "/"); ok {
		return s.st.fullID(kind, ident)
	}
	return s.st.fullID("user", login)
}
