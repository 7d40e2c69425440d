package reliability

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// mappingStale is mappingV1 plus a stale_if_error rule (by the rel.stale
// label) and a stale_if_error bundle.
const mappingStale = mappingV1 + `  - name: rel-stale
    match:
      secret_labels: {rel.stale: "*"}
    variable: "{secret_label:rel.stale}"
    stale_if_error: 10m
  - name: rel-stale-bundle
    match: {secret: rel_stale_bundle}
    bundle:
      format: dotenv
      variables: {DB: apps/rel/db-password, TOKEN: apps/rel/api-token}
    stale_if_error: 10m
`

// driverClock is a clock the stale rows move to leave the window.
type driverClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *driverClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *driverClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// staleStack is a row's stack with mappingStale in force and the driver on
// clock.
func staleStack(t *testing.T, clock *driverClock) *stack {
	t.Helper()
	s := rowStack(t, func(c *stackConfig) { c.now = clock.now })
	s.writeMapping(mappingStale)
	eventually(t, 10*time.Second, "the stale_if_error mapping was not loaded", func() bool {
		return s.store.Resolve(policy.Request{SecretName: "x", SecretLabels: map[string]string{"rel.stale": "apps/rel/db-password"}}).StaleIfError > 0
	})
	return s
}

func (s *stack) staleReq(variable string) pluginapi.Request {
	return s.request("rel_stale_"+variable[strings.LastIndex(variable, "/")+1:], map[string]string{"rel.stale": variable})
}

// expectStale sends req, checks that want came back and that the audit line
// and status say stale, with its cause.
func (s *stack) expectStale(req pluginapi.Request, want []byte, cause string) {
	s.t.Helper()
	s.expectValue(req, want)
	e, _ := s.auditLine(req)
	m := e.ContextMap()
	if m["stale"] != true || m["stale_cause"] != cause {
		s.t.Fatalf("audit line %v, want stale true with stale_cause %s", m, cause)
	}
	if _, ok := m["stale_age"]; !ok {
		s.t.Fatalf("audit line %v has no stale_age", m)
	}
	st := s.drv.Status()
	if st.Counters.Stale == 0 {
		s.t.Fatalf("status counters %+v count no stale answer", st.Counters)
	}
	for _, r := range st.Recent {
		if r.Task != req.TaskID || r.Secret != req.SecretName {
			continue
		}
		if !r.Stale || string(r.StaleCause) != cause || r.StaleAge <= 0 {
			s.t.Fatalf("status record %+v, want stale with an age and cause %s", r, cause)
		}
		return
	}
	s.t.Fatalf("status has no record of %s", req.TaskID)
}

// jwtIdentities configures authn-jwt/swarm on s's Conjur for the plugin's
// host and for swarm/other, a host that may authenticate and sees none of
// apps/rel, and returns a JWT issuer whose tokens it accepts.
func (s *stack) jwtIdentities(t *testing.T) *conjurdev.JWTIssuer {
	t.Helper()
	// Conjur's authn-jwt takes a host only with at least one annotation
	// authn-jwt/<service>/<claim> pinning a claim of its JWTs.
	const policyText = `
- !host
  id: swarm/other
  annotations:
    authn-jwt/swarm/sub: other
- !host
  id: swarm/conjur-plugin
  annotations:
    authn-jwt/swarm/sub: conjur-plugin
- !webservice conjur/authn-jwt/swarm
- &jwt-vars
  - !variable conjur/authn-jwt/swarm/public-keys
  - !variable conjur/authn-jwt/swarm/issuer
  - !variable conjur/authn-jwt/swarm/token-app-property
  - !variable conjur/authn-jwt/swarm/identity-path
- !permit
  role: !host swarm/conjur-plugin
  privilege: authenticate
  resource: !webservice conjur/authn-jwt/swarm
- !permit
  role: !host swarm/other
  privilege: authenticate
  resource: !webservice conjur/authn-jwt/swarm
`
	if _, err := s.dev.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(policyText)); err != nil {
		t.Fatal(err)
	}
	iss, err := conjurdev.NewJWTIssuer("https://issuer.test")
	if err != nil {
		t.Fatal(err)
	}
	for v, val := range map[string]string{"public-keys": iss.PublicKeysJSON(), "issuer": iss.Issuer(), "token-app-property": "sub", "identity-path": "swarm"} {
		if err := s.dev.SetSecret("conjur/authn-jwt/swarm/"+v, []byte(val)); err != nil {
			t.Fatal(err)
		}
	}
	return iss
}

// jwtHandoff is the bootstrap document of a JWT for host swarm/<sub> for
// this stack's Conjur.
func (s *stack) jwtHandoff(t *testing.T, iss *conjurdev.JWTIssuer, sub string) string {
	t.Helper()
	tok, err := iss.Sign(map[string]any{"sub": sub}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s.secrets.add([]byte(tok))
	return fmt.Sprintf(`{"jwt":%q,"account":%q,"appliance_url":%q}`, tok, s.dev.Account(), s.listener().URL)
}

// staleRows are the fault matrix's rows for stale_if_error (issue 14).
func staleRows() []matrixRow {
	return []matrixRow{
		{"ok/stale_if_error: Conjur down serves the last good value inside the window", "listener closed after one good fetch", func(t *testing.T) (string, string) {
			clock := &driverClock{}
			s := staleStack(t, clock)
			req := s.staleReq(dbPassword)
			s.expectValue(req, s.values[dbPassword])
			s.down()
			clock.advance(9 * time.Minute)
			s.expectStale(s.staleReq(dbPassword), s.values[dbPassword], "UNAVAILABLE")
			// A variable never fetched has no last good value.
			s.expectCode(s.staleReq(apiToken), "UNAVAILABLE")
			// A rule without stale_if_error is refused as before.
			s.expectCode(s.byLabel(dbPassword), "UNAVAILABLE")
			s.up()
			res := s.get(s.staleReq(dbPassword))
			if res.Err != "" || string(res.Value) != string(s.values[dbPassword]) {
				t.Fatalf("after Conjur is back: Err %q", res.Err)
			}
			return "- (stale)", "fresh values once Conjur answers"
		}},
		{"fail/UNAVAILABLE: stale_if_error refuses after the window", "listener closed, last good fetch 11m old", func(t *testing.T) (string, string) {
			clock := &driverClock{}
			s := staleStack(t, clock)
			s.expectValue(s.staleReq(dbPassword), s.values[dbPassword])
			s.down()
			clock.advance(11 * time.Minute)
			s.expectCode(s.staleReq(dbPassword), "UNAVAILABLE")
			return "UNAVAILABLE", "-"
		}},
		{"fail/FORBIDDEN: stale_if_error never answers a refusal", "execute denied after one good fetch", func(t *testing.T) (string, string) {
			s := staleStack(t, &driverClock{})
			if _, err := s.dev.LoadConjurPolicy(conjurdev.ModePatch, "apps", []byte(grantExecute)); err != nil {
				t.Fatal(err)
			}
			s.expectValue(s.staleReq(noExecute), s.values[noExecute])
			if _, err := s.dev.LoadConjurPolicy(conjurdev.ModePatch, "apps", []byte(strings.Replace(grantExecute, "!permit", "!deny", 1))); err != nil {
				t.Fatal(err)
			}
			s.expectCode(s.staleReq(noExecute), "FORBIDDEN")
			return "FORBIDDEN", "-"
		}},
		{"fail/NOT_FOUND: stale_if_error never answers a missing variable", "variable deleted after one good fetch", func(t *testing.T) (string, string) {
			s := staleStack(t, &driverClock{})
			s.expectValue(s.staleReq(apiToken), s.values[apiToken])
			if _, err := s.dev.LoadConjurPolicy(conjurdev.ModePatch, "apps", []byte("- !delete\n  record: !variable rel/api-token\n")); err != nil {
				t.Fatal(err)
			}
			s.expectCode(s.staleReq(apiToken), "NOT_FOUND")
			return "NOT_FOUND", "-"
		}},
		{"fail/UNAVAILABLE: a handoff of another identity drops the last good values", "JWT of another host handed over, then listener closed", func(t *testing.T) (string, string) {
			var iss *conjurdev.JWTIssuer
			s := rowStack(t, func(c *stackConfig) {
				c.login, c.jwtService = "", "swarm"
				c.handover = func(s *stack) string {
					iss = s.jwtIdentities(t)
					return s.jwtHandoff(t, iss, "conjur-plugin")
				}
			})
			s.writeMapping(mappingStale)
			eventually(t, 10*time.Second, "the stale_if_error mapping was not loaded", func() bool {
				return s.store.Resolve(policy.Request{SecretName: "x", SecretLabels: map[string]string{"rel.stale": dbPassword}}).StaleIfError > 0
			})
			s.expectValue(s.staleReq(dbPassword), s.values[dbPassword])
			ans, err := s.plugin.Bootstrap(t.Context(), []byte(s.jwtHandoff(t, iss, "other")))
			if err != nil || !ans.OK {
				t.Fatalf("handoff of swarm/other: %v %s", err, ans.Err)
			}
			s.down()
			s.expectCode(s.staleReq(dbPassword), "UNAVAILABLE")
			return "UNAVAILABLE", "-"
		}},
		{"ok/stale_if_error: a bundle whose every member has a last good value", "listener closed after one good fetch", func(t *testing.T) (string, string) {
			s := staleStack(t, &driverClock{})
			res := s.get(s.request("rel_stale_bundle", nil))
			if res.Err != "" || len(res.Value) == 0 {
				t.Fatalf("bundle with Conjur up: %s", res.Err)
			}
			want := res.Value // the dotenv rendering, as served fresh
			s.down()
			s.expectStale(s.request("rel_stale_bundle", nil), want, "UNAVAILABLE")
			return "- (stale)", "fresh values once Conjur answers"
		}},
	}
}
