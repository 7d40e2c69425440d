package conjur

import (
	"slices"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// sample is one request's outcome as the window sees it: sent at at, back
// rtt later.
type sample struct {
	at         time.Duration // from the test's epoch
	rtt        time.Duration
	full       bool
	alone      bool // no other request in flight
	short      bool // its Gets waited under half windowWaitShare of a round trip
	overloaded bool
}

func TestWindowAdapts(t *testing.T) {
	ms := time.Millisecond
	// run is n round trips of rtt from at, one after another (each sent as
	// the last returned).
	run := func(at time.Duration, n int, rtt time.Duration, full bool) []sample {
		s := make([]sample, n)
		for i := range s {
			s[i] = sample{at: at + time.Duration(i)*rtt, rtt: rtt, full: full}
		}
		return s
	}
	seq := func(parts ...[]sample) []sample { return slices.Concat(parts...) }
	alone := func(s []sample) []sample {
		for i := range s {
			s[i].alone = true
		}
		return s
	}
	one := func(s sample) []sample { return []sample{s} }
	flat := run(0, 20, 2*ms, true) // 4 -> 24
	p := windowPeriod
	for _, tc := range []struct {
		name    string
		ceiling int
		samples []sample
		want    int
	}{
		{"a new window has the old fixed size", 32, nil, 4},
		{"a ceiling below the start is the window", 2, nil, 2},
		{"flat latency with the window full grows it to the ceiling", 32, run(0, 40, 2*ms, true), 32},
		{"flat latency with the window never full keeps it", 32, run(0, 40, 2*ms, false), 4},
		{"one slow answer does not cut", 32, seq(flat, one(sample{at: 50 * ms, rtt: 10 * ms})), 24},
		{"latency five times the baseline for a while shrinks it round trip by round trip", 32, seq(flat, run(50*ms, 10, 10*ms, false)), 1},
		{"latency three times the baseline for a while cuts it", 32, seq(flat, run(50*ms, 10, 6*ms, false)), 9},
		{"latency within twice the baseline keeps growing it", 32, seq(flat, run(50*ms, 3, 4*ms, true)), 27},
		{"an overloaded answer halves it", 32, seq(flat, one(sample{at: 50 * ms, rtt: 2 * ms, overloaded: true})), 12},
		{"a fast overloaded answer does not lower the baseline", 32, seq(flat,
			one(sample{at: 50 * ms, rtt: ms / 5, overloaded: true}),
			run(60*ms, 3, 2*ms, true)), 12},
		{"requests sent before the cut do not cut again", 32, seq(flat,
			one(sample{at: 50 * ms, rtt: 2 * ms, overloaded: true}),
			one(sample{at: 49 * ms, rtt: 4 * ms, overloaded: true})), 12},
		{"a request sent after the cut cuts again", 32, seq(flat,
			one(sample{at: 50 * ms, rtt: 2 * ms, overloaded: true}),
			one(sample{at: 53 * ms, rtt: 2 * ms, overloaded: true})), 6},
		{"it never goes below one", 32, seq(run(0, 2, 2*ms, true),
			one(sample{at: 10 * ms, rtt: 2 * ms, overloaded: true}),
			one(sample{at: 20 * ms, rtt: 2 * ms, overloaded: true}),
			one(sample{at: 30 * ms, rtt: 2 * ms, overloaded: true}),
			one(sample{at: 40 * ms, rtt: 2 * ms, overloaded: true})), 1},
		{"after a cut it grows by one per window of samples", 32, seq(flat,
			one(sample{at: 50 * ms, rtt: 2 * ms, overloaded: true}),
			run(60*ms, 3, 2*ms, true)), 12},
		{"a latency that stays higher for a period becomes the baseline", 32, seq(flat,
			run(2*p, 6, 10*ms, false),        // cuts: 24 -> 12 -> 6 ...
			run(3*p+20*ms, 6, 15*ms, false)), // 1.5x the new baseline: no cut
			4},
		{"the same latency against the old baseline cuts", 32, seq(flat,
			run(2*p, 6, 10*ms, false),
			run(2*p+100*ms, 6, 15*ms, false)), 1},
		// A rise that requests sent alone see too is Conjur's, not queueing
		// behind ours: the baseline follows it at once.
		{"a rise seen by a request sent alone does not cut", 32, seq(flat,
			alone(run(50*ms, 1, 10*ms, false)),
			run(60*ms, 10, 10*ms, false)), 24},
		{"after a cut, requests sent alone raise the baseline and it grows again", 32, seq(flat,
			run(50*ms, 10, 10*ms, false), // cut to 1
			alone(run(200*ms, 4, 10*ms, true)),
			run(250*ms, 20, 10*ms, true)), 7}, // 1 -> 7: after a cut, one per window of samples
		{"one slow answer sent alone among fast ones does not raise the baseline", 32, seq(flat,
			alone(run(50*ms, 3, 2*ms, false)),
			alone(run(60*ms, 1, 10*ms, false)),
			run(80*ms, 10, 10*ms, false)), 1},
		{"batches whose Gets hardly waited shrink it by one per window of samples", 32, seq(flat,
			func() []sample {
				s := run(50*ms, 24, 2*ms, false)
				for i := range s {
					s[i].short = true
				}
				return s
			}()), 22}, // 24 -> 22.98
		{"a round trip sent alone a period ago no longer holds the baseline up", 32, seq(
			alone(run(0, 4, 10*ms, false)),
			run(p+50*ms, 20, 2*ms, true),
			run(p+200*ms, 10, 10*ms, false)), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWindow(tc.ceiling)
			epoch := time.Unix(1_000_000, 0)
			for _, s := range tc.samples {
				w.observe(epoch.Add(s.at), epoch.Add(s.at+s.rtt), slot{held: true, full: s.full, short: s.short, alone: s.alone}, s.overloaded)
			}
			if got := w.size(); got != tc.want {
				t.Errorf("window %d (%.2f), want %d", got, w.limit, tc.want)
			}
		})
	}
}

func TestOverloadedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"a value is not overload", nil, false},
		{"5xx or 429 (UNAVAILABLE) is overload", &Error{Code: errcode.Unavailable}, true},
		{"no answer in time (TIMEOUT) is overload", &Error{Code: errcode.Timeout}, true},
		{"a 404 is an answer", &Error{Code: errcode.NotFound}, false},
		{"a 403 is an answer", &Error{Code: errcode.Forbidden}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answers := map[string]result{"apps/a": {data: []byte("x")}, "apps/b": {err: tc.err}}
			if got := overloaded(answers); got != tc.want {
				t.Errorf("overloaded = %t, want %t", got, tc.want)
			}
		})
	}
}
