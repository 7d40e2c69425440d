package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// The answers of a GetSecret that serves no value: a body that cannot be
// read, a request that fails validation, a decision that does not allow
// the Get, a failed fetch, each audited by finish. They are apart from the
// GetSecret path (driver.go) so that no frame on it holds what only these
// rare branches need (docs/architecture.md, "Code shaped by a measurement").

// unreadable answers a body that could not be decoded.
//
//go:noinline
func (d *Driver) unreadable(start time.Time, err error) pluginapi.Response {
	return d.finish(start, &audit.Record{}, errcode.BadRequest,
		fmt.Sprintf("the GetSecret request could not be read: %v; the caller is not a Docker Engine this plugin understands", pluginapi.OneLine(err)), err, nil)
}

// invalid answers a request that fails validation.
//
//go:noinline
func (d *Driver) invalid(start time.Time, rec *audit.Record, err error) pluginapi.Response {
	return d.finish(start, rec, errcode.BadRequest,
		fmt.Sprintf("the GetSecret request is invalid: %v; the caller is not a Docker Engine this plugin understands", pluginapi.ClipTo(pluginapi.OneLine(err), maxProblemText)), err, nil)
}

// refuse answers a decision that does not allow the Get: a denial, an
// invalid mapping, or a mapping for another Conjur account.
//
//go:noinline
func (d *Driver) refuse(start time.Time, rec *audit.Record, dec *policy.Decision) pluginapi.Response {
	switch {
	case !dec.Allow && dec.Condition == policy.ConditionMappingInvalid:
		return d.finish(start, rec, errcode.MappingInvalid, dec.Reason, nil, nil)
	case !dec.Allow:
		reason := dec.Reason
		if reason == "" {
			reason = "no rule of the mapping policy matched"
		}
		msg := reason + "; " + errcode.Denied.Fix()
		return d.finish(start, rec, errcode.Denied, msg, nil, []zap.Field{zap.String("condition", dec.Condition)})
	default:
		return d.finish(start, rec, errcode.NotConfigured,
			fmt.Sprintf("the mapping file names Conjur account %q but the plugin authenticates to %q; make the mapping file's account match CONJUR_ACCOUNT", dec.Account, d.opts.Account), nil, nil)
	}
}

// fetchFailed answers a failed fetch of ref: with its last good value when
// dec's rule allows it, else with the failure.
//
//go:noinline
func (d *Driver) fetchFailed(start time.Time, rec *audit.Record, dec *policy.Decision, ref conjur.Ref, err error) pluginapi.Response {
	code, msg := d.fetchFailure(err)
	good, age, ok := d.lastGood(dec, ref, code)
	if !ok {
		return d.finish(start, rec, code, msg, err, nil)
	}
	markStale(rec, age, code)
	if dec.Field != "" || dec.Decode != "" {
		return d.serveRendered(start, rec, dec, [][]byte{good.Data})
	}
	return d.serve(start, rec, dec, good.Data)
}

// fetchFailure is conjurFailure, plus why the last handoff was refused when
// the plugin has no credential.
func (d *Driver) fetchFailure(err error) (errcode.Code, string) {
	code, msg := conjurFailure(err)
	if code == errcode.NoCredential {
		msg += d.handoff.noCredentialCause()
	}
	return code, msg
}

// conjurFailure turns a Conjur error into a code and a message saying what
// failed and what to do. The Conjur client's message is used when it has one.
func conjurFailure(err error) (errcode.Code, string) {
	var ce *conjur.Error
	if errors.As(err, &ce) {
		msg := ce.Msg
		if msg == "" {
			msg = ce.Code.Message()
		}
		return ce.Code, msg
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errcode.Timeout, errcode.Timeout.Message()
	}
	if errors.Is(err, context.Canceled) {
		return errcode.Canceled, errcode.Canceled.Message()
	}
	return errcode.Internal, errcode.Internal.Message()
}

// finish records a failed decision and returns its answer.
func (d *Driver) finish(start time.Time, rec *audit.Record, code errcode.Code, msg string, cause error, extra []zap.Field) pluginapi.Response {
	rec.Time = start
	rec.Code = code
	rec.Decision = audit.DecisionError
	if code == errcode.Denied {
		rec.Decision = audit.DecisionDeny
	}
	text := errText(code, rec.Secret, rec.Variable, rec.Rule, msg)
	rec.Reason = text
	rec.Duration = d.opts.Now().Sub(start)
	if cause != nil {
		extra = append(extra, zap.String("cause", causeText(cause)))
	}
	d.record(rec, extra)
	return pluginapi.Response{Err: text}
}
