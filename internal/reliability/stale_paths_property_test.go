package reliability

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// staleSecret is one secret of the property test: how a task asks for it,
// the variables its value comes from, and its rule's stale_if_error window
// (0: none) less how old a value the value cache may hand it (reuse: true
// rules), so that a serve at t proves a Conjur answer no older than
// t - cacheSlack.
type staleSecret struct {
	name       string
	labels     map[string]string
	vars       []string
	stale      bool
	cacheSlack time.Duration
	weight     int // in ten: how often a task asks for it
}

// TestStaleIfErrorPropertyOverPaths drives random tasks of one service
// (prefetch on, value cache on) through every path a value can take:
// single variables, bundles, prefetched variables, values from the value
// cache filled by a rule without stale_if_error; the clock moves between
// tasks, and Conjur goes down at random points. The property, each outage:
// a stale_if_error secret served at most its window ago (less the cache's
// TTL for a reuse rule) is served (its last good value); one of which no
// variable was served within the window is refused UNAVAILABLE; a secret
// without stale_if_error is refused.
func TestStaleIfErrorPropertyOverPaths(t *testing.T) {
	const (
		window   = 10 * time.Minute
		cacheTTL = time.Minute
		steps    = 120
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 23))
	clock := &driverClock{}
	s := pathsStack(t, clock, func(c *stackConfig) { c.prefetch, c.cacheTTL = true, cacheTTL })
	secrets := []staleSecret{
		{"rel_stale_db", map[string]string{"rel.stale": dbPassword}, []string{dbPassword}, true, 0, 8},
		{"rel_stale_token", map[string]string{"rel.stale": apiToken}, []string{apiToken}, true, 0, 8},
		{"rel_stalereuse_db", map[string]string{"rel.stalereuse": dbPassword}, []string{dbPassword}, true, cacheTTL, 6},
		{"rel_reuse_token", map[string]string{"rel.reuse": apiToken}, []string{apiToken}, false, cacheTTL, 6},
		{"rel_reuse_db", map[string]string{"rel.reuse": dbPassword}, []string{dbPassword}, false, cacheTTL, 6},
		{"rel_stale_bundle", nil, []string{dbPassword, apiToken}, true, 0, 1},
		{"rel_stale_reuse_bundle", nil, []string{dbPassword, apiToken}, true, cacheTTL, 1},
	}
	now := time.Duration(0)          // the clock's offset
	served := map[string]time.Time{} // secret -> when last served fresh (as an offset from zero)
	latest := map[string]time.Time{} // variable -> when last served fresh by any secret
	zero := time.Time{}
	fresh := map[string][]byte{} // secret -> its value as served fresh
	learned := map[string]bool{} // variables the service was served as single secrets: prefetched by later tasks
	ask := func(task func(string, map[string]string) pluginapi.Request, sec staleSecret) pluginapi.Response {
		return s.get(task(sec.name, sec.labels))
	}
	outages := 0
	for step := range steps {
		switch op := rng.IntN(10); {
		case op < 4:
			d := []time.Duration{30 * time.Second, time.Minute, 3 * time.Minute, 5 * time.Minute}[rng.IntN(4)]
			clock.advance(d)
			now += d
		case op < 6 && step > 0:
			outages++
			s.down()
			task := s.taskRequests()
			for _, i := range rng.Perm(len(secrets)) {
				sec := secrets[i]
				res := ask(task, sec)
				at, was := served[sec.name]
				// Strictly inside: the clocks of the driver and the client
				// are read at instants apart by real time.
				must := sec.stale && was && now-at.Sub(zero) < window-sec.cacheSlack
				// Refused when a variable has no answer of Conjur recent
				// enough: within the window for a last good value, within
				// the cache's TTL for a rule without stale_if_error.
				limit := cacheTTL
				if sec.stale {
					limit = window
				}
				mustNot := false
				for _, v := range sec.vars {
					if l, ok := latest[v]; !ok || now-l.Sub(zero) >= limit {
						mustNot = true
					}
				}
				switch {
				case must && (res.Err != "" || string(res.Value) != string(fresh[sec.name])):
					t.Fatalf("step %d, Conjur down %s after %s was served: Err %q, value right %t; want its last good value (seed %d)",
						step, now-at.Sub(zero), sec.name, res.Err, string(res.Value) == string(fresh[sec.name]), seed)
				case mustNot && (res.Err == "" || errCode(res.Err) != "UNAVAILABLE"):
					t.Fatalf("step %d, Conjur down: %s answered Err %q with %d bytes; want UNAVAILABLE (seed %d)", step, sec.name, res.Err, len(res.Value), seed)
				}
			}
			s.up()
		default:
			task := s.taskRequests()
			prefetched := false
			for _, i := range rng.Perm(len(secrets)) {
				sec := secrets[i]
				if rng.IntN(10) >= sec.weight {
					continue
				}
				if len(sec.labels) > 0 && !prefetched {
					// The task's first Get of a single variable fetches
					// every variable the service was served before, with it.
					prefetched = true
					for v := range learned {
						latest[v] = zero.Add(now)
					}
				}
				res := ask(task, sec)
				if res.Err != "" || len(res.Value) == 0 {
					t.Fatalf("step %d, Conjur up: %s: %s (seed %d)", step, sec.name, res.Err, seed)
				}
				fresh[sec.name] = res.Value
				served[sec.name] = zero.Add(now)
				for _, v := range sec.vars {
					latest[v] = zero.Add(now)
					if len(sec.labels) > 0 {
						learned[v] = true
					}
				}
			}
		}
	}
	if outages == 0 || len(served) == 0 {
		t.Fatalf("%d outages, %d secrets served: the run proved nothing (seed %d)", outages, len(served), seed)
	}
}
