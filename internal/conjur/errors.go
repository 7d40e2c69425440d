package conjur

import (
	"errors"
	"fmt"

	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Code is a stable, machine-readable kind of failure; package errcode lists
// every code with when it is returned and what to do.
type Code = errcode.Code

// The codes a Client returns, under the names this package uses; the comment
// says when.
const (
	// CodeNoCredential: no credential yet: hand one over or set the file.
	CodeNoCredential = errcode.NoCredential
	// CodeAuthRefused: Conjur answered 401 (or 403/400 for authn-jwt) to authentication.
	CodeAuthRefused = errcode.AuthRefused
	// CodeCredentialRejected: a handoff for another login, or an unparsable credential.
	CodeCredentialRejected = errcode.CredentialRejected
	// CodeForbidden: 403, the variable is visible without execute.
	CodeForbidden = errcode.Forbidden
	// CodeNotFound: 404, the variable is missing, empty or invisible.
	CodeNotFound = errcode.NotFound
	// CodeUnavailable: every URL failed (connect error, 5xx, 405), or the client is closed.
	CodeUnavailable = errcode.Unavailable
	// CodeTimeout: FetchTimeout (or the caller's deadline) passed.
	CodeTimeout = errcode.Timeout
	// CodeTLS: the certificate of every URL tried failed verification.
	CodeTLS = errcode.TLS
	// CodeValueUnusable: Conjur's answer cannot be used as returned (undecodable).
	CodeValueUnusable = errcode.ValueUnusable
	// CodeBadRequest: the Ref is invalid, or Conjur rejected the request as malformed (400/422).
	CodeBadRequest = errcode.BadRequest
	// CodeNotConfigured: the per-request identity mode has no identity for a Get, or cannot sign its JWT.
	CodeNotConfigured = errcode.NotConfigured
	// CodeCanceled: the caller's context was canceled before an answer.
	CodeCanceled = errcode.Canceled
	// CodeInternal is what CodeOf returns for an error that is not an *Error.
	CodeInternal = errcode.Internal
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
