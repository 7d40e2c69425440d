package conjur

import "time"

// window is the batcher's adaptive request window: how many requests to
// Conjur may be in flight at once. It grows while Conjur's round trip stays
// near the lowest one seen lately (the baseline: Conjur is not queueing our
// requests) and Gets waited for a slot a good share of a round trip (the
// window holds them back), gives back a little when queued Gets hardly
// waited (it is wider than they need: a wider one would only send them
// alone), and shrinks when the round trip rises (smoothed) well above the
// baseline or Conjur answers that it is overloaded (5xx, 429, a timeout).
// Gets that find the window full gather into batches, so a smaller window
// costs Conjur fewer requests, not the Gets their answers. The ceiling is
// CONJUR_SWARM_MAX_IN_FLIGHT.
//
// The idea is that of a congestion window: queueing delay is the signal, a
// baseline that forgets old minima lets it follow a Conjur that became
// slower for good, and a request that went out before the last cut does not
// cut again: it was sent under the old window and reports the congestion
// that cut already answered.
//
// A request that went out alone (no other of ours in flight) cannot have
// queued behind ours, so its round trip is Conjur's latency without our
// load: the baseline is never below the lowest of the last few such round
// trips. Without that, a Conjur that became slower for a reason not ours
// (a farther follower, its own load) held the window at 1 for one to two
// periods, each Get waiting for a batch, because the old minimum said
// every round trip was queueing (the storm of docs/benchmarks.md: a
// baseline of 0.13 ms against a stand-in answering in 2 ms kept the window
// at 1 for the whole per-node run). Not safe for concurrent use: the
// batcher's lock guards it.
type window struct {
	ceiling float64
	limit   float64 // the window, between 1 and ceiling

	srtt      time.Duration // the round trip, smoothed (0: none yet)
	base, cur time.Duration // lowest round trip of the previous and of the current period (0: none)
	periodEnd time.Time     // when cur becomes the previous period's
	lastCut   time.Time     // when the window last shrank
	avoid     bool          // a cut has happened: grow by one per window of samples, not one per sample

	alone    [aloneSamples]aloneSample // the last round trips of requests sent alone, a ring
	aloneEnd int                       // where the next goes
}

// aloneSample is the round trip of a request that went out alone, and when
// it returned.
type aloneSample struct {
	rtt time.Duration
	at  time.Time
}

const (
	// windowStart is the window of a new client (the fixed window of old).
	windowStart = 4
	// windowTolerance: a round trip up to this many times the baseline counts
	// as flat (Conjur's own variation, batch sizes, a busy machine).
	windowTolerance = 2.0
	// windowPeriod: the baseline is the lowest round trip of the last one to
	// two periods.
	windowPeriod = 10 * time.Second
	// windowMinCut bounds one cut: at most halve.
	windowMinCut = 0.5
	// aloneSamples: the baseline's floor is the lowest of this many last
	// round trips of requests sent alone (one slow answer does not raise it).
	aloneSamples = 4
	// windowWaitShare: the window grows only for Gets that waited for a slot
	// at least this share of a round trip, and shrinks gently for batches
	// that waited under half of it. With the slots' round trips spread out
	// a slot frees about every round trip / window, so while Gets arrive one
	// after another (the per-node model) the window stays between 1 and 2
	// times 1/windowWaitShare slots, and a burst, whose Gets wait longer,
	// grows it to what Conjur's round trip allows: waiting for a batch adds
	// about this share of a round trip to a Get and spares Conjur the
	// requests a wider window would send alone.
	windowWaitShare = 0.25
	// windowGain is the weight of a new round trip in the smoothed one, so
	// that one slow answer (a busy machine, a slow query) does not cut.
	windowGain = 0.25
)

func newWindow(ceiling int) *window {
	c := float64(max(ceiling, 1))
	return &window{ceiling: c, limit: min(windowStart, c)}
}

// waited classes the wait of a batch's oldest Get for a slot: long enough
// to grow the window (windowWaitShare of the smoothed round trip, or any
// wait before the first round trip), or so short that the window is wider
// than the Gets need (under half that), which shrinks it gently. A Get
// that finds a slot free is sent at once and does neither.
func (w *window) waited(d time.Duration) (long, short bool) {
	grow := windowWaitShare * float64(w.srtt)
	return d > 0 && float64(d) >= grow, d > 0 && float64(d) < grow/2
}

// size is how many requests may be in flight now.
func (w *window) size() int { return int(w.limit) }

// observe takes one request's outcome: it went out at sent, holding sl,
// and returned at now; sl.full says the window held its Gets back (grow),
// sl.short that they hardly waited (give back a little), sl.alone that no
// other request of ours was in flight, overloaded that Conjur answered
// 5xx/429 or did not answer in time.
func (w *window) observe(sent, now time.Time, sl slot, overloaded bool) {
	rtt := now.Sub(sent)
	if now.After(w.periodEnd) {
		w.base, w.cur, w.periodEnd = w.cur, 0, now.Add(windowPeriod)
	}
	if !overloaded && rtt > 0 {
		if w.cur == 0 || rtt < w.cur {
			w.cur = rtt
		}
		if w.srtt == 0 {
			w.srtt = rtt
		}
		w.srtt += time.Duration(windowGain * float64(rtt-w.srtt))
		if sl.alone {
			w.alone[w.aloneEnd] = aloneSample{rtt: rtt, at: now}
			w.aloneEnd = (w.aloneEnd + 1) % aloneSamples
		}
	}
	base := w.baseline(now)
	switch {
	case overloaded:
		w.cut(sent, now, windowMinCut)
	case base > 0 && float64(w.srtt) > windowTolerance*float64(base):
		// Conjur (or this machine) is queueing: shrink in proportion to how
		// far the round trip rose past the tolerance.
		w.cut(sent, now, windowTolerance*float64(base)/float64(w.srtt))
	case sl.full && w.avoid:
		w.limit = min(w.ceiling, w.limit+1/w.limit)
	case sl.full:
		w.limit = min(w.ceiling, w.limit+1)
	case sl.short:
		// Wide enough: end the start's fast growth, and give back a little.
		w.avoid = true
		w.limit = max(1, w.limit-1/w.limit)
	}
}

// baseline is the lowest round trip of the last one to two periods, but
// not below the lowest of the last round trips of requests sent alone
// within a period of now (0: none yet).
func (w *window) baseline(now time.Time) time.Duration {
	var low time.Duration
	switch {
	case w.base == 0:
		low = w.cur
	case w.cur == 0:
		low = w.base
	default:
		low = min(w.base, w.cur)
	}
	var floor time.Duration
	for _, a := range w.alone {
		if a.rtt > 0 && now.Sub(a.at) <= windowPeriod && (floor == 0 || a.rtt < floor) {
			floor = a.rtt
		}
	}
	return max(low, floor)
}

// cut multiplies the window by factor (at least windowMinCut), unless the
// request went out before the last cut (sent no later than it).
func (w *window) cut(sent, now time.Time, factor float64) {
	w.avoid = true
	if !sent.After(w.lastCut) {
		return
	}
	w.lastCut = now
	w.limit = max(1, w.limit*max(factor, windowMinCut))
}
