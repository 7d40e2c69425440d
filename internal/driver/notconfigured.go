package driver

import (
	"context"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// NotConfigured is the Conjur side of a plugin whose Conjur settings are
// missing or invalid. It answers every fetch and every handoff
// NOT_CONFIGURED with Reason (which settings to fix), has no last good
// value and reports no Conjur state, so that "not configured" is one more
// answer of the Conjur side rather than a nil the driver checks for. New
// puts it in place when Options.Conjur is nil, with Options.ConfigProblem
// as its Reason.
type NotConfigured struct{ Reason string }

// defaultNotConfigured is the reason when Options gives none.
const defaultNotConfigured = "the plugin has no Conjur connection settings"

func (n NotConfigured) err() *conjur.Error {
	return &conjur.Error{Code: errcode.NotConfigured, Msg: n.Reason + "; " + errcode.NotConfigured.Fix()}
}

// Get answers NOT_CONFIGURED.
func (n NotConfigured) Get(context.Context, conjur.Ref) (conjur.Value, error) {
	return conjur.Value{}, n.err()
}

// GetMany answers NOT_CONFIGURED for every ref.
func (n NotConfigured) GetMany(_ context.Context, refs []conjur.Ref) []conjur.Result {
	out := make([]conjur.Result, len(refs))
	for i := range out {
		out[i].Err = n.err()
	}
	return out
}

// LastGood has nothing: nothing was ever fetched.
func (NotConfigured) LastGood(conjur.Ref, time.Duration) (conjur.Value, time.Time, bool) {
	return conjur.Value{}, time.Time{}, false
}

// Adopt answers NOT_CONFIGURED.
func (n NotConfigured) Adopt(context.Context, credential.Credential) error { return n.err() }

// Status reports nothing: there is no Conjur client.
func (NotConfigured) Status() conjur.Status { return conjur.Status{} }

// Ping answers NOT_CONFIGURED.
func (n NotConfigured) Ping(context.Context) error { return n.err() }
