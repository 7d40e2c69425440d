package conjur

import (
	"errors"
	"fmt"

	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Error is every error the Client returns. Msg says what failed and what to
// do, for users; Cause keeps the underlying error for the log. Neither holds a
// secret value or an API key.
type Error struct {
	Code     errcode.Code
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

// CodeOf returns "" for nil, the Code of the first *Error in the chain, else errcode.Internal.
func CodeOf(err error) errcode.Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return errcode.Internal
}

// withVariable returns a copy of e about variable id.
func (e *Error) withVariable(id string) *Error {
	c := *e
	c.Variable = id
	return &c
}
