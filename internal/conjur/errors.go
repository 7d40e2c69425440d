package conjur

import (
	"errors"
	"fmt"

	"go.uber.org/zap/zapcore"
)

// Code is a stable, machine-readable kind of failure. Its text never changes;
// the driver shows it to operators as [CODE].
type Code string

// The codes a Client returns; the comment says when.
const (
	// CodeNoCredential: no credential yet: hand one over or set the file.
	CodeNoCredential Code = "NO_CREDENTIAL"
	// CodeAuthRefused: Conjur answered 401 (or 403/400 for authn-jwt) to authentication.
	CodeAuthRefused Code = "AUTH_REFUSED"
	// CodeCredentialRejected: a handoff for another login, or an unparsable credential.
	CodeCredentialRejected Code = "CREDENTIAL_REJECTED"
	// CodeForbidden: 403, the variable is visible without execute.
	CodeForbidden Code = "FORBIDDEN"
	// CodeNotFound: 404, the variable is missing, empty or invisible.
	CodeNotFound Code = "NOT_FOUND"
	// CodeUnavailable: every URL failed (connect error, 5xx, 405), or the client is closed.
	CodeUnavailable Code = "UNAVAILABLE"
	// CodeTimeout: FetchTimeout (or the caller's deadline) passed.
	CodeTimeout Code = "TIMEOUT"
	// CodeTLS: the certificate of every URL tried failed verification.
	CodeTLS Code = "TLS"
	// CodeValueUnusable: Conjur's answer cannot be used as returned (undecodable).
	CodeValueUnusable Code = "VALUE_UNUSABLE"
	// CodeBadRequest: the Ref is invalid, or Conjur rejected the request as malformed (400/422).
	CodeBadRequest Code = "BAD_REQUEST"
	// CodeCanceled: the caller's context was canceled before an answer.
	CodeCanceled Code = "CANCELED"
	// CodeInternal is what CodeOf returns for an error that is not an *Error.
	CodeInternal Code = "INTERNAL"
)

// Error is every error the Client returns. Msg says what failed and what to
// do, for users; Cause keeps the underlying error for the log. Neither holds a
// secret value or an API key.
type Error struct {
	Code     Code
	Variable string // "" when the error is not about one variable
	Msg      string // what failed + what to do
	Cause    error
}

// Error returns the user-facing message.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Format prints Msg for %s and %v, and adds the code and the cause for %+v
// (which zap logs as errorVerbose).
func (e *Error) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "[%s] %s", e.Code, e.Msg)
		if e.Cause != nil {
			fmt.Fprintf(f, " (cause: %v)", e.Cause)
		}
	case verb == 'q':
		fmt.Fprintf(f, "%q", e.Msg)
	default:
		fmt.Fprint(f, e.Msg)
	}
}

// MarshalLogObject logs code, variable, message and cause.
func (e *Error) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("code", string(e.Code))
	if e.Variable != "" {
		enc.AddString("variable", e.Variable)
	}
	enc.AddString("msg", e.Msg)
	if e.Cause != nil {
		enc.AddString("cause", e.Cause.Error())
	}
	return nil
}

// CodeOf returns "" for nil, the Code of the first *Error in the chain, else CodeInternal.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// withVariable returns a copy of e about variable id.
func (e *Error) withVariable(id string) *Error {
	c := *e
	c.Variable = id
	return &c
}
