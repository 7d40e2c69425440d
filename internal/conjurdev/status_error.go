package conjurdev

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
)

// StatusError is an error the server answers with an HTTP status and a
// Conjur error body. Go callers of LoadConjurPolicy and friends receive it too.
type StatusError struct {
	Status    int
	Code      string // Conjur's error code: not_found, policy_invalid, ...
	Message   string
	Target    string // not_found: the kind
	ID        string // not_found: the full id
	Line, Col int    // policy_invalid: where
	Filename  string // policy_invalid: the policy loaded (parse errors only)

	// validation_failed: the field and what is wrong with it.
	Field, FieldMessage string

	RetryAfter int // seconds, sent as Retry-After when > 0 (409 policy_conflict)

	detail     string // policy_invalid: the message without its position prefix
	yamlSyntax bool   // a YAML syntax error: Rails' bare 500 on a load
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func errConflict() *StatusError {
	return &StatusError{
		Status: http.StatusConflict, Code: "policy_conflict",
		Message:    "Concurrent policy load in progress, please retry",
		RetryAfter: 1 + mrand.IntN(8),
	}
}

// body is the JSON error body Conjur sends for e.
func (e *StatusError) body() []byte {
	type details struct {
		Code    string `json:"code"`
		Target  string `json:"target"`
		Message string `json:"message"`
	}
	type inner struct {
		Code     string `json:"code"`
		Filename string `json:"filename"`
		Line     int    `json:"line"`
		Col      int    `json:"column"`
	}
	type errObj struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		Target     string `json:"target,omitempty"`
		Details    any    `json:"details,omitempty"`
		InnerError *inner `json:"innererror,omitempty"`
	}
	o := errObj{Code: e.Code, Message: e.Message, Target: e.Target}
	switch {
	case e.ID != "":
		o.Details = &details{Code: e.Code, Target: "id", Message: e.ID}
	case e.Field != "":
		// Sequel validation errors list every field as an array.
		o.Details = []details{{Code: e.Code, Target: e.Field, Message: e.FieldMessage}}
	}
	if e.Code == "policy_invalid" && e.Filename != "" {
		o.InnerError = &inner{Code: "policy_invalid", Filename: e.Filename, Line: e.Line, Col: e.Col}
	}
	b, _ := json.Marshal(map[string]errObj{"error": o})
	return b
}
