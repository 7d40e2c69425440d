package conjur

import (
	"testing"
	"time"
)

// sample is one request's outcome as the window sees it: sent at at, back
// rtt later.
type sample struct {
	at         time.Duration // from the test's epoch
	rtt        time.Duration
	full       bool
	overloaded bool
}

func TestWindowAdapts(t *testing.T) {
	ms := time.Millisecond
	flat := func(n int, full bool) []sample { // n round trips of 2 ms, one after another
		s := make([]sample, n)
		for i := range s {
			s[i] = sample{at: time.Duration(i) * 2 * ms, rtt: 2 * ms, full: full}
		}
		return s
	}
	then := func(a []sample, b ...sample) []sample { return append(a, b...) }
	for _, tc := range []struct {
		name    string
		ceiling int
		samples []sample
		want    int
	}{
		{"a new window has the old fixed size", 32, nil, 4},
		{"a ceiling below the start is the window", 2, nil, 2},
		{"flat latency with the window full grows it to the ceiling", 32, flat(40, true), 32},
		{"flat latency with the window never full keeps it", 32, flat(40, false), 4},
		{"latency five times the baseline halves it", 32, then(flat(20, true), sample{at: 50 * ms, rtt: 10 * ms}), 12},
		{"latency three times the baseline cuts it by two thirds", 32, then(flat(20, true), sample{at: 50 * ms, rtt: 6 * ms}), 16},
		{"latency within twice the baseline keeps growing it", 32, then(flat(20, true), sample{at: 50 * ms, rtt: 4 * ms, full: true}), 25},
		{"an overloaded answer halves it", 32, then(flat(20, true), sample{at: 50 * ms, rtt: 2 * ms, overloaded: true}), 12},
		{"requests sent before the cut do not cut again", 32, then(flat(20, true),
			sample{at: 50 * ms, rtt: 2 * ms, overloaded: true},
			sample{at: 49 * ms, rtt: 4 * ms, overloaded: true},
			sample{at: 51 * ms, rtt: 30 * ms}), 12},
		{"a request sent after the cut cuts again", 32, then(flat(20, true),
			sample{at: 50 * ms, rtt: 2 * ms, overloaded: true},
			sample{at: 53 * ms, rtt: 2 * ms, overloaded: true}), 6},
		{"it never goes below one", 32, then(flat(2, true),
			sample{at: 10 * ms, rtt: 2 * ms, overloaded: true},
			sample{at: 20 * ms, rtt: 2 * ms, overloaded: true},
			sample{at: 30 * ms, rtt: 2 * ms, overloaded: true},
			sample{at: 40 * ms, rtt: 2 * ms, overloaded: true}), 1},
		{"after a cut it grows by one per window of samples", 32, then(flat(20, true),
			sample{at: 50 * ms, rtt: 2 * ms, overloaded: true},
			sample{at: 60 * ms, rtt: 2 * ms, full: true}, sample{at: 62 * ms, rtt: 2 * ms, full: true},
			sample{at: 64 * ms, rtt: 2 * ms, full: true}), 12},
		{"a latency that stays higher for a period becomes the baseline", 32, then(flat(20, true),
			sample{at: 2 * windowPeriod, rtt: 10 * ms, full: true},       // cut: 24 -> 12
			sample{at: 3*windowPeriod + 20*ms, rtt: 10 * ms, full: true}, // the 2 ms minimum is forgotten
			sample{at: 3*windowPeriod + 40*ms, rtt: 15 * ms}), 12},       // 1.5x the new baseline: no cut
		{"the same latency against the old baseline cuts", 32, then(flat(20, true),
			sample{at: 2 * windowPeriod, rtt: 10 * ms, full: true},
			sample{at: 2*windowPeriod + 20*ms, rtt: 15 * ms}), 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWindow(tc.ceiling)
			epoch := time.Unix(1_000_000, 0)
			for _, s := range tc.samples {
				w.observe(epoch.Add(s.at), epoch.Add(s.at+s.rtt), s.full, s.overloaded)
			}
			if got := w.size(); got != tc.want {
				t.Errorf("window %d (%.2f), want %d", got, w.limit, tc.want)
			}
		})
	}
}
