package reliability

import (
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// mappingStalePaths is mappingStale plus rules whose values may come from
// the value cache (reuse: true): one without stale_if_error, one with it,
// and a bundle with it.
const mappingStalePaths = mappingStale + `  - name: rel-reuse
    match:
      secret_labels: {rel.reuse: "*"}
    variable: "{secret_label:rel.reuse}"
    reuse: true
  - name: rel-stale-reuse
    match:
      secret_labels: {rel.stalereuse: "*"}
    variable: "{secret_label:rel.stalereuse}"
    reuse: true
    stale_if_error: 10m
  - name: rel-stale-reuse-bundle
    match: {secret: rel_stale_reuse_bundle}
    bundle:
      format: dotenv
      variables: {DB: apps/rel/db-password, TOKEN: apps/rel/api-token}
    reuse: true
    stale_if_error: 10m
`

// pathsStack is a row's stack with mappingStalePaths in force, the driver
// and the Conjur client on clock, and mods applied.
func pathsStack(t *testing.T, clock *driverClock, mods ...func(*stackConfig)) *stack {
	t.Helper()
	s := rowStack(t, append([]func(*stackConfig){func(c *stackConfig) { c.now = clock.now }}, mods...)...)
	s.writeMapping(mappingStalePaths)
	eventually(t, 10*time.Second, "the mapping with the reuse rules was not loaded", func() bool {
		return s.store.Resolve(policy.Request{SecretName: "rel_stale_reuse_bundle"}).Bundle != nil
	})
	return s
}

// expectFlag checks that req's audit line has flag (prefetched, cached)
// true: the row went through the path it is about.
func (s *stack) expectFlag(req pluginapi.Request, flag string) {
	s.t.Helper()
	e, ok := s.auditLine(req)
	if !ok || e.ContextMap()[flag] != true {
		s.t.Fatalf("the audit line of %s (task %s) is %v: want %s true, or the row does not exercise that path", req.SecretName, req.TaskID, e.ContextMap(), flag)
	}
}

func reuseReq(s *stack, rule, variable string) pluginapi.Request {
	return s.request("rel_"+rule+"_"+variable[len("apps/rel/"):], map[string]string{rule: variable})
}

// stalePathRows are the fault matrix's rows for stale_if_error through each
// path a value can take (issue 23): prefetch, the value cache (reuse: true)
// and bundles.
func stalePathRows() []matrixRow {
	return []matrixRow{
		{"ok/stale_if_error through prefetch: a task's two secrets, Conjur down, forced update converges", "prefetch on; a task every 4m; listener closed 12m after the first", func(t *testing.T) (string, string) {
			clock := &driverClock{}
			s := pathsStack(t, clock, func(c *stackConfig) { c.prefetch = true })
			labels := func(v string) map[string]string { return map[string]string{"rel.stale": v} }
			for i := range 3 {
				task := s.taskRequests()
				first, second := task("rel_stale_db", labels(dbPassword)), task("rel_stale_token", labels(apiToken))
				s.expectValue(first, s.values[dbPassword])
				s.expectValue(second, s.values[apiToken])
				if i > 0 {
					s.expectFlag(second, "prefetched")
				}
				clock.advance(4 * time.Minute)
			}
			s.down()
			task := s.taskRequests() // the forced update's task
			s.expectStale(task("rel_stale_db", labels(dbPassword)), s.values[dbPassword], "UNAVAILABLE")
			s.expectStale(task("rel_stale_token", labels(apiToken)), s.values[apiToken], "UNAVAILABLE")
			s.up()
			task = s.taskRequests()
			s.expectValue(task("rel_stale_db", labels(dbPassword)), s.values[dbPassword])
			s.expectValue(task("rel_stale_token", labels(apiToken)), s.values[apiToken])
			return "- (stale)", "fresh values once Conjur answers"
		}},
		{"ok/stale_if_error through the value cache (reuse: true): a value served from the cache is a last good value", "CONJUR_SWARM_CACHE_TTL=1m; the value cached by a rule without stale_if_error; listener closed 2m later", func(t *testing.T) (string, string) {
			clock := &driverClock{}
			s := pathsStack(t, clock, func(c *stackConfig) { c.cacheTTL = time.Minute })
			s.expectValue(reuseReq(s, "rel.reuse", dbPassword), s.values[dbPassword])
			cached := reuseReq(s, "rel.stalereuse", dbPassword)
			s.expectValue(cached, s.values[dbPassword])
			s.expectFlag(cached, "cached")
			clock.advance(2 * time.Minute)
			s.down()
			s.expectStale(reuseReq(s, "rel.stalereuse", dbPassword), s.values[dbPassword], "UNAVAILABLE")
			return "- (stale)", "-"
		}},
		{"ok/stale_if_error for a bundle whose members came from the value cache, prefetch on", "CONJUR_SWARM_CACHE_TTL=1m, prefetch on; members cached by a rule without stale_if_error; listener closed 2m later", func(t *testing.T) (string, string) {
			clock := &driverClock{}
			s := pathsStack(t, clock, func(c *stackConfig) { c.cacheTTL, c.prefetch = time.Minute, true })
			task := s.taskRequests()
			s.expectValue(task("rel_db", map[string]string{"rel.reuse": dbPassword}), s.values[dbPassword])
			s.expectValue(task("rel_token", map[string]string{"rel.reuse": apiToken}), s.values[apiToken])
			bundle := task("rel_stale_reuse_bundle", nil)
			res := s.get(bundle)
			if res.Err != "" || len(res.Value) == 0 {
				t.Fatalf("bundle with Conjur up: %s", res.Err)
			}
			s.expectFlag(bundle, "cached")
			clock.advance(2 * time.Minute)
			s.down()
			s.expectStale(s.request("rel_stale_reuse_bundle", nil), res.Value, "UNAVAILABLE")
			return "- (stale)", "-"
		}},
	}
}

// staleHeld returns rule's line of the status read over the plugin socket.
func (s *stack) staleHeld(rule string) (pluginapi.StaleRuleState, bool) {
	s.t.Helper()
	st, err := s.plugin.Status(s.t.Context())
	if err != nil {
		s.t.Fatal(err)
	}
	for _, r := range st.StaleIfError {
		if r.Rule == rule {
			return r, true
		}
	}
	return pluginapi.StaleRuleState{}, false
}

// The status says, for each stale_if_error rule of the mapping, how many of
// the variables its Gets asked for have a last good value now (issue 23
// item 6): none before a Get, every variable after them, whichever path
// fetched them, none once the window has passed.
func TestStatusCountsLastGoodValuesPerRule(t *testing.T) {
	clock := &driverClock{}
	s := pathsStack(t, clock, func(c *stackConfig) { c.prefetch = true })
	want := func(rule string, variables, held int) {
		t.Helper()
		got, ok := s.staleHeld(rule)
		if !ok || got.Variables != variables || got.Held != held || got.Window != 10*time.Minute {
			t.Fatalf("status of rule %s: %+v (listed %t); want %d of %d variables held, window 10m", rule, got, ok, held, variables)
		}
	}
	want("rel-stale", 0, 0)
	want("rel-stale-bundle", 0, 0)
	if _, ok := s.staleHeld("rel-reuse"); ok {
		t.Fatal("a rule without stale_if_error is listed")
	}
	for range 2 { // the second task's second Get is served from prefetch
		task := s.taskRequests()
		s.expectValue(task("rel_stale_db", map[string]string{"rel.stale": dbPassword}), s.values[dbPassword])
		s.expectValue(task("rel_stale_token", map[string]string{"rel.stale": apiToken}), s.values[apiToken])
	}
	if res := s.get(s.request("rel_stale_bundle", nil)); res.Err != "" {
		t.Fatal(res.Err)
	}
	want("rel-stale", 2, 2)
	want("rel-stale-bundle", 2, 2)
	clock.advance(11 * time.Minute)
	want("rel-stale", 2, 0)
}
