package driver

import (
	"context"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// NotConfigured is the Conjur side of a plugin whose Conjur settings are
// missing or invalid. It answers every fetch and every handoff
// NOT_CONFIGURED with Reason (which settings to fix) and reports no Conjur
// state, so that "not configured" is one more answer of the Conjur side
// rather than a nil the driver checks for. New puts it wherever Options
// leaves the Fetcher or the CredentialSink out.
type NotConfigured struct{ Reason string }

var (
	_ Fetcher        = NotConfigured{}
	_ CredentialSink = NotConfigured{}
	_ ConjurReporter = NotConfigured{}
)

// defaultNotConfigured is the reason when Options gives none.
const defaultNotConfigured = "the plugin has no Conjur connection settings"

func (n NotConfigured) err() *conjur.Error {
	return &conjur.Error{Code: errcode.NotConfigured, Msg: n.Reason + "; " + errcode.NotConfigured.Fix()}
}

// Get answers NOT_CONFIGURED.
func (n NotConfigured) Get(context.Context, Ref) (Value, error) { return Value{}, n.err() }

// Adopt answers NOT_CONFIGURED.
func (n NotConfigured) Adopt(context.Context, Credential) error { return n.err() }

// Status reports nothing: there is no Conjur client.
func (NotConfigured) Status() ConjurStatus { return ConjurStatus{} }
