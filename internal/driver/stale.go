package driver

import (
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// LastGoodSource answers from the values Conjur last gave for refs fetched
// with KeepLastGood (*conjur.Client): the stale_if_error rules.
type LastGoodSource interface {
	LastGood(ref Ref, maxAge time.Duration) (Value, time.Time, bool)
}

var _ LastGoodSource = (*conjur.Client)(nil)

// StaleObserver counts the answers served from a last good value
// (*Metrics). An Observer without it is not told.
type StaleObserver interface {
	ObserveStale(rule string)
}

// staleEligible reports whether a fetch that failed with code may be
// answered with a last good value: only when Conjur could not be reached
// or did not answer in time, never on an answer of Conjur (a refusal, a
// missing variable, a rejected credential) nor on a TLS or value problem.
func staleEligible(code Code) bool {
	return code == errcode.Unavailable || code == errcode.Timeout
}

// lastGood returns the last good value of ref within dec's stale_if_error
// window, and its age, when the fetch failed with a code that allows it.
func (d *Driver) lastGood(dec *PolicyDecision, ref Ref, code Code) (Value, time.Duration, bool) {
	src, ok := d.opts.Fetcher.(LastGoodSource)
	if dec.StaleIfError <= 0 || !ok || !staleEligible(code) {
		return Value{}, 0, false
	}
	v, at, ok := src.LastGood(ref, dec.StaleIfError)
	if !ok {
		return Value{}, 0, false
	}
	age := d.opts.Now().Sub(at)
	if age > dec.StaleIfError { // the window, on the driver's clock too
		return Value{}, 0, false
	}
	return v, age, true
}

// markStale records in rec that the answer is a last good value of the
// given age, served because of cause; the oldest age of a bundle's members
// is kept.
func markStale(rec *pluginapi.Record, age time.Duration, cause Code) {
	rec.Stale = true
	rec.StaleCause = cause
	if age > rec.StaleAge {
		rec.StaleAge = age
	}
}
