package driver

import (
	"time"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// lastGood returns the last good value of ref within dec's stale_if_error
// window, and its age, when the fetch failed with a code that allows it.
func (d *Driver) lastGood(dec *policy.Decision, ref conjur.Ref, code errcode.Code) (conjur.Value, time.Duration, bool) {
	if dec.StaleIfError <= 0 || !code.MayServeStale() {
		return conjur.Value{}, 0, false
	}
	v, at, ok := d.opts.Conjur.LastGood(ref, dec.StaleIfError)
	if !ok {
		return conjur.Value{}, 0, false
	}
	age := d.opts.Now().Sub(at)
	if age > dec.StaleIfError { // the window, on the driver's clock too
		return conjur.Value{}, 0, false
	}
	return v, age, true
}

// markStale records in rec that the answer is a last good value of the
// given age, served because of cause; the oldest age of a bundle's members
// is kept.
func markStale(rec *audit.Record, age time.Duration, cause errcode.Code) {
	rec.Stale = true
	rec.StaleCause = cause
	if age > rec.StaleAge {
		rec.StaleAge = age
	}
}
