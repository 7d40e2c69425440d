package conjur

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Ref names one variable to fetch.
type Ref struct {
	ID      string // "apps/db/password", without account and kind
	Version int    // 0 = latest
	NoCache bool   // bypass the value cache (a fresh fetch is still shared with concurrent identical requests)
	// KeepLastGood keeps the value Conjur answers in memory for LastGood
	// (rules with stale_if_error).
	KeepLastGood bool
	// Workload is whom the Get is made for in the per-request identity
	// mode (identity.go); nil in the single-identity modes, which ignore it.
	Workload *Workload
}

// Value is a fetched variable. Data is a redact.Bytes: a Value prints, logs
// and encodes without it.
type Value struct {
	Data      redact.Bytes
	Coalesced bool   // this Get joined a fetch another caller had started
	Cached    bool   // served from the value cache
	URL       string // the appliance that answered

	fetchedAt time.Time // a cached value: when Conjur answered it
}

// Result is one ref's answer from GetMany: its value, or the error that
// says why there is none (an *Error naming the variable).
type Result struct {
	Value Value
	Err   error
}

// String describes the value by its metadata.
func (v Value) String() string {
	return fmt.Sprintf("conjur.Value{len=%d coalesced=%t cached=%t url=%q}", len(v.Data), v.Coalesced, v.Cached, v.URL)
}

// MarshalLogObject logs the value's metadata as a zap object.
func (v Value) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddInt("len", len(v.Data))
	enc.AddBool("coalesced", v.Coalesced)
	enc.AddBool("cached", v.Cached)
	enc.AddString("url", v.URL)
	return nil
}

func checkRef(ref Ref) *Error {
	switch {
	case ref.ID == "":
		return &Error{Code: errcode.BadRequest, Msg: "no variable id given: name the Conjur variable to fetch"}
	case len(ref.ID) > maxIDLength:
		return &Error{Code: errcode.BadRequest, Msg: fmt.Sprintf("variable id is %d bytes long, more than %d: check the mapping", len(ref.ID), maxIDLength)}
	case hasControl(ref.ID) || strings.HasPrefix(ref.ID, "/"):
		return &Error{Code: errcode.BadRequest, Variable: ref.ID, Msg: "variable id has a control character or a leading '/': check the mapping"}
	case ref.Version < 0:
		return &Error{Code: errcode.BadRequest, Variable: ref.ID, Msg: fmt.Sprintf("variable version %d is negative: give 0 for the latest, or a version number", ref.Version)}
	}
	return nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}
