package reliability

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

const (
	dbPassword = "apps/rel/db-password"
	apiToken   = "apps/rel/api-token"
	tlsKey     = "apps/rel/tls-key"
	noExecute  = "apps/rel/no-execute"
	unset      = "apps/rel/unset"
	newVar     = "apps/rel/new"
)

// matrixRow is one fault: what it does to the plugin's surroundings and the
// code the plugin must answer with (in Err and in the audit line). run
// returns the code observed and how the plugin recovered.
type matrixRow struct {
	name  string
	fault string
	run   func(t *testing.T) (code, recovery string)
}

// rowStack is a stack for one row with the leak scan and the goroutine check
// registered around it.
func rowStack(t *testing.T, mods ...func(*stackConfig)) *stack {
	t.Helper()
	checkNoLeftovers(t)
	s := newStack(t, mods...)
	t.Cleanup(func() {
		if n := s.scanForLeaks(); n == 0 {
			t.Error("no log line was captured: the leak scan proves nothing")
		}
	})
	return s
}

// TestFaultMatrix drives the real plugin socket through every fault of
// issue 8 and checks, for each: the exact code in Err and in the audit line,
// no seeded secret in any log field, Err or status, recovery without a
// restart once the fault clears, and no goroutine left behind.
func TestFaultMatrix(t *testing.T) {
	rows := []matrixRow{
		{"ok/served: every seeded value, text and binary, byte for byte", "none", func(t *testing.T) (string, string) {
			s := rowStack(t)
			for _, id := range []string{dbPassword, apiToken, tlsKey} {
				s.expectValue(s.byLabel(id), s.values[id])
			}
			return "-", "-"
		}},
		{"ok/token revoked mid-run: one re-authentication, value served", "ExpireTokens (every access token answers 401)", func(t *testing.T) (string, string) {
			s := rowStack(t)
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			before := s.dev.Count(conjurdev.EpAuthn)
			s.dev.ExpireTokens()
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			if s.dev.Count(conjurdev.EpAuthn) == before {
				t.Fatal("the value came back without a new authentication: the 401 path was not exercised")
			}
			return "-", "transparent: refreshed the token on the 401"
		}},
		{"fail/UNAVAILABLE: Conjur Cloud shape (API under /api, SaaS environment) goes down and comes back", "dev server under --path-prefix /api, CONJUR_ENVIRONMENT=saas; listener closed", func(t *testing.T) (string, string) {
			s := rowStack(t, func(c *stackConfig) { c.cloud = true })
			if !strings.HasSuffix(s.ln.URL, "/api") {
				t.Fatalf("the stack's URL %q is not under /api", s.ln.URL)
			}
			for _, id := range []string{dbPassword, tlsKey} {
				s.expectValue(s.byLabel(id), s.values[id])
			}
			s.down()
			s.expectCode(s.byLabel(apiToken), "UNAVAILABLE")
			s.up()
			s.expectValue(s.byLabel(apiToken), s.values[apiToken])
			if n := s.dev.Count(conjurdev.EpOther); n != 0 {
				t.Fatalf("%d requests missed the /api prefix", n)
			}
			return "UNAVAILABLE", "next Get after the listener is back, still under /api"
		}},
		{"fail/UNAVAILABLE: Conjur down (listener closed)", "listener closed, connections refused", func(t *testing.T) (string, string) {
			s := rowStack(t)
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			s.down()
			s.expectCode(s.byLabel(dbPassword), "UNAVAILABLE")
			s.up()
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			return "UNAVAILABLE", "next Get after the listener is back"
		}},
		{"fail/TIMEOUT: Conjur slower than the fetch deadline", fmt.Sprintf("latency %s > fetch timeout %s", fetchTimeout+time.Second, fetchTimeout), func(t *testing.T) (string, string) {
			s := rowStack(t)
			s.dev.Faults().SetLatency(fetchTimeout + time.Second)
			s.expectCode(s.byLabel(dbPassword), "TIMEOUT")
			s.dev.Faults().Reset()
			// A new fetch, started after the fault cleared, is served.
			s.expectValue(s.byLabel(apiToken), s.values[apiToken])
			// A Get of the slow variable may still join the fetch started
			// under the fault in its last moments (coalescing) and share its
			// TIMEOUT; once that fetch has ended the variable is served.
			eventually(t, 2*fetchTimeout, "the slow variable is not served after the fault cleared", func() bool {
				req := s.byLabel(dbPassword)
				res := s.get(req)
				if res.Err == "" {
					return string(res.Value) == string(s.values[dbPassword])
				}
				if e, _ := s.auditLine(req); e.ContextMap()["coalesced"] != true {
					t.Fatalf("after the fault cleared, a Get that did not share the old fetch failed: %s", res.Err)
				}
				return false
			})
			return "TIMEOUT", "next new fetch after the latency is removed"
		}},
		{"fail/UNAVAILABLE: Conjur answers 5xx", "status 500, 502, 503 for every request", func(t *testing.T) (string, string) {
			s := rowStack(t)
			for _, st := range []int{500, 502, 503} {
				s.dev.Faults().SetStatus(st, 1)
				s.expectCode(s.byLabel(dbPassword), "UNAVAILABLE")
			}
			s.dev.Faults().Reset()
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			return "UNAVAILABLE", "next Get after the 5xx stop"
		}},
		{"fail/UNAVAILABLE: connections dropped without an answer", "every connection closed before answering", func(t *testing.T) (string, string) {
			s := rowStack(t)
			s.expectValue(s.byLabel(apiToken), s.values[apiToken])
			s.dev.Faults().SetDrop(1)
			s.expectCode(s.byLabel(apiToken), "UNAVAILABLE")
			s.dev.Faults().Reset()
			s.expectValue(s.byLabel(apiToken), s.values[apiToken])
			return "UNAVAILABLE", "next Get after the drops stop"
		}},
		{"fail/AUTH_REFUSED: API key rotated and tokens revoked", "RotateAPIKey + ExpireTokens", func(t *testing.T) (string, string) {
			s := rowStack(t)
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			key, err := s.dev.RotateAPIKey(pluginRole)
			if err != nil {
				t.Fatal(err)
			}
			s.secrets.add([]byte(key))
			s.dev.ExpireTokens()
			s.expectCode(s.byLabel(dbPassword), "AUTH_REFUSED")
			st, err := s.plugin.Status(context.Background())
			if err != nil || st.Conjur.LastErrorCode != "AUTH_REFUSED" {
				t.Fatalf("status %+v %v: want last_error_code AUTH_REFUSED for operators", st.Conjur, err)
			}
			ans, err := s.plugin.Bootstrap(context.Background(), []byte(s.handoff(pluginLogin, key)))
			if err != nil || !ans.OK {
				t.Fatalf("handing over the rotated key: %v %s", err, ans.Err)
			}
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			return "AUTH_REFUSED", "handoff of the new key (bootstrap endpoint), no restart"
		}},
		{"fail/FORBIDDEN: variable visible without execute (403)", "permit read only", func(t *testing.T) (string, string) {
			s := rowStack(t)
			s.expectCode(s.byLabel(noExecute), "FORBIDDEN")
			if _, err := s.dev.LoadConjurPolicy(conjurdev.ModePatch, "apps", []byte(grantExecute)); err != nil {
				t.Fatal(err)
			}
			s.expectValue(s.byLabel(noExecute), s.values[noExecute])
			return "FORBIDDEN", "next Get after execute is permitted"
		}},
		{"fail/NOT_FOUND: variable without a value or missing (404)", "declared without a value; never declared", func(t *testing.T) (string, string) {
			s := rowStack(t)
			s.expectCode(s.byLabel(unset), "NOT_FOUND")
			s.expectCode(s.byLabel("apps/rel/never-declared"), "NOT_FOUND")
			s.set(t, unset, randomValue(unset), s.secrets)
			s.expectValue(s.byLabel(unset), s.values[unset])
			return "NOT_FOUND", "next Get after a value is set"
		}},
		{"fail/TLS: a server whose certificate the pinned CA did not sign", "impostor on Conjur's address (wrong CA)", func(t *testing.T) (string, string) {
			s := rowStack(t)
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			impostor := newDev(t, "", s.secrets)
			s.down()
			l := s.serveOther(impostor)
			s.dev.ExpireTokens() // the plugin must reconnect and authenticate: to the impostor
			s.expectCode(s.byLabel(dbPassword), "TLS")
			if impostor.dev.Count(conjurdev.EpAuthn)+impostor.dev.Count(conjurdev.EpBatch)+impostor.dev.Count(conjurdev.EpSecret) != 0 {
				t.Fatal("the impostor received a request: the credential or the request was sent without verifying its certificate")
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			s.up()
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			return "TLS", "next Get once the real Conjur is back on the address"
		}},
		{"fail/NOT_FOUND: lagging follower lacks a new variable; no failover on an answer", "follower (first URL) without a variable the leader has", func(t *testing.T) (string, string) {
			f := followerSetup(t)
			s := f.s
			// Served by the first URL: its value, not the leader's.
			s.expectValue(s.byLabel(dbPassword), f.follower.values[dbPassword])
			leaderReads := reads(s.dev)
			s.expectCode(s.byLabel(newVar), "NOT_FOUND")
			if reads(s.dev) != leaderReads {
				t.Fatal("the leader was asked after the follower's 404: a 404 is an answer, not a failure")
			}
			// Replication catches up.
			if _, err := f.follower.dev.LoadConjurPolicy(conjurdev.ModePatch, "apps", []byte(newVariable)); err != nil {
				t.Fatal(err)
			}
			f.follower.set(t, newVar, s.values[newVar], s.secrets)
			s.expectValue(s.byLabel(newVar), s.values[newVar])
			return "NOT_FOUND", "next Get after the follower has the variable"
		}},
		{"ok/read-only follower serves fetches", "SetReadOnly(true): writes answer 405", func(t *testing.T) (string, string) {
			f := followerSetup(t)
			f.follower.dev.Faults().SetReadOnly(true)
			f.follower.dev.ExpireTokens() // authenticate again against the read-only node
			f.s.expectValue(f.s.byLabel(apiToken), f.follower.values[apiToken])
			if f.follower.dev.Count(conjurdev.EpAuthn) < 2 {
				t.Fatal("no authentication against the read-only follower")
			}
			if st := postStatus(t, f.followerLn, "/secrets/"+f.follower.dev.Account()+"/variable/apps%2Frel%2Fdb-password"); st != http.StatusMethodNotAllowed {
				t.Fatalf("a write to the follower answered %d, want 405: the follower is not read-only", st)
			}
			return "-", "-"
		}},
		{"ok/first appliance down: the next one serves", "follower (first URL) listener closed", func(t *testing.T) (string, string) {
			f := followerSetup(t)
			if err := f.followerLn.Close(); err != nil {
				t.Fatal(err)
			}
			f.s.expectValue(f.s.byLabel(apiToken), f.s.values[apiToken]) // the leader's value
			st, err := f.s.plugin.Status(context.Background())
			if err != nil || len(st.Conjur.URLs) != 2 || st.Conjur.URLs[0].Healthy {
				t.Fatalf("status URLs %+v %v: want the first URL shown unhealthy", st.Conjur.URLs, err)
			}
			return "-", "failover within the same Get"
		}},
		{"ok/mapping file replaced by a broken one during load: last good policy kept", "mapping file renamed over with a broken one while Gets run", func(t *testing.T) (string, string) {
			s := rowStack(t)
			if _, err := policy.Parse("broken.yml", []byte(mappingBroken)); err == nil {
				t.Fatal("the broken mapping parses: the row would prove nothing")
			}
			v1, err := s.plugin.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// Gets keep running while the file is replaced.
			ctx, stop := context.WithCancel(context.Background())
			type got struct {
				n   int
				bad string
			}
			done := make(chan got, 1)
			go func() {
				var g got
				for ctx.Err() == nil {
					req := s.byLabel(dbPassword)
					res, err := s.plugin.GetSecret(context.Background(), req)
					g.n++
					if err != nil || res.Err != "" || string(res.Value) != string(s.values[dbPassword]) {
						g.bad = fmt.Sprintf("%v %s", err, res.Err)
					}
				}
				done <- g
			}()
			s.writeMapping(mappingBroken)
			eventually(t, 15*time.Second, "the broken mapping file is not reported in status", func() bool {
				st, err := s.plugin.Status(context.Background())
				return err == nil && st.Mapping.LastError != ""
			})
			stop()
			g := <-done
			if g.bad != "" || g.n == 0 {
				t.Fatalf("%d Gets during the reload, last failure: %s", g.n, g.bad)
			}
			st, err := s.plugin.Status(context.Background())
			if err != nil || st.Mapping.Hash != v1.Mapping.Hash || !strings.Contains(st.Mapping.LastError, "no_such_placeholder") {
				t.Fatalf("mapping status %+v %v: want the old hash and the problem", st.Mapping, err)
			}
			if len(s.logs.FilterMessage("mapping file rejected; keeping the last good policy").All()) != 1 {
				t.Fatal("want one log line for the rejected mapping file")
			}
			onlyV2 := s.request("rel_by_key", map[string]string{"rel.key": "api-token"})
			s.expectCode(onlyV2, "DENIED")

			s.writeMapping(mappingV2)
			eventually(t, 15*time.Second, "the fixed mapping file is not loaded", func() bool {
				st, err := s.plugin.Status(context.Background())
				return err == nil && st.Mapping.Hash != v1.Mapping.Hash && st.Mapping.LastError == ""
			})
			s.expectValue(s.request("rel_by_key", map[string]string{"rel.key": "api-token"}), s.values[apiToken])
			return "DENIED (rule only in the rejected file); status mapping.last_error", fmt.Sprintf("%d Gets served during the reload; fixed file loaded", g.n)
		}},
		{"fail/CREDENTIAL_REJECTED and AUTH_REFUSED: wrong bootstrap credential refused, old one kept", "handoff of another login, a wrong key, and non-JSON", func(t *testing.T) (string, string) {
			s := rowStack(t)
			before, err := s.plugin.Status(context.Background())
			if err != nil || before.Conjur.CredentialFingerprint == "" {
				t.Fatalf("status before: %+v %v", before.Conjur, err)
			}
			wrongKey, otherKey, textKey := randomValue("wrong-key"), randomValue("other-key"), randomValue("text-key")
			for _, k := range [][]byte{wrongKey, otherKey, textKey} {
				s.secrets.add(k)
			}
			cases := []struct{ body, code string }{
				{s.handoff("host/swarm/other", string(otherKey)), "CREDENTIAL_REJECTED"},
				{s.handoff(pluginLogin, string(wrongKey)), "AUTH_REFUSED"},
				{fmt.Sprintf(`api_key=%s`, textKey), "CREDENTIAL_REJECTED"},
			}
			for _, c := range cases {
				ans, err := s.plugin.Bootstrap(context.Background(), []byte(c.body))
				if err != nil || ans.OK || errCode(ans.Err) != c.code {
					t.Fatalf("handoff answered %+v %v, want [%s]", ans, err, c.code)
				}
				s.errMu.Lock()
				s.errs = append(s.errs, ans.Err)
				s.errMu.Unlock()
			}
			var logged []string
			for _, e := range s.logs.FilterMessage("credential handoff rejected").All() {
				logged = append(logged, fmt.Sprint(e.ContextMap()["code"]))
			}
			if want := "CREDENTIAL_REJECTED AUTH_REFUSED CREDENTIAL_REJECTED"; strings.Join(logged, " ") != want {
				t.Fatalf("handoff log codes %v, want %s", logged, want)
			}
			after, err := s.plugin.Status(context.Background())
			if err != nil || after.Conjur.CredentialFingerprint != before.Conjur.CredentialFingerprint || after.Conjur.CredentialSource != "handoff" {
				t.Fatalf("credential after the refusals %+v %v: want the old one", after.Conjur, err)
			}
			s.dev.ExpireTokens() // the kept credential must still authenticate
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword])
			return "CREDENTIAL_REJECTED, AUTH_REFUSED (answer and log)", "nothing to recover: the old credential stayed in use"
		}},
	}

	rows = append(rows, bundleRows()...)
	rows = append(rows, staleRows()...)
	rows = append(rows, stalePathRows()...)

	type line struct{ name, fault, code, recovery, result string }
	var summary []line
	for _, r := range rows {
		var code, recovery string
		ok := t.Run(r.name, func(t *testing.T) { code, recovery = r.run(t) })
		result := "PASS"
		if !ok {
			result = "FAIL"
		}
		summary = append(summary, line{r.name, r.fault, code, recovery, result})
	}
	var b strings.Builder
	b.WriteString("fault matrix (code = in Err and in the audit/handoff log line; every row: no secret in logs/Err/status, no goroutine left):\n")
	for _, l := range summary {
		fmt.Fprintf(&b, "  %-4s %s\n       fault: %s | code: %s | recovery: %s\n", l.result, l.name, l.fault, l.code, l.recovery)
	}
	t.Log(b.String())
}

// follower is a stack whose appliance URLs are [follower, leader]: two
// separate servers with the same policy, as a Conjur follower replicates
// its leader. They share the plugin's login through the admin user (the
// dev server cannot give a host the same API key on two servers); the
// admin is a stand-in for a replicated host identity here, nothing more.
type follower struct {
	s          *stack
	follower   *devServer
	followerLn *conjurdev.Listener
}

func followerSetup(t *testing.T) follower {
	t.Helper()
	adminKey := string(randomValue("admin-key"))
	var f follower
	f.s = rowStack(t, func(c *stackConfig) {
		c.adminKey = adminKey
		c.login = "admin"
		c.handover = func(s *stack) string { // names both appliances: a handed-over credential goes only to the URLs it names
			return fmt.Sprintf(`{"login":"admin","api_key":%q,"account":%q,"appliance_url":"%s,%s"}`, adminKey, s.dev.Account(), f.followerLn.URL, s.ln.URL)
		}
		c.urls = func(s *stack) ([]string, []byte) {
			f.follower = newDev(t, adminKey, s.secrets)
			f.followerLn = f.follower.listen(t, "127.0.0.1:0")
			t.Cleanup(func() { _ = f.followerLn.Close() })
			return []string{f.followerLn.URL, s.ln.URL}, f.followerLn.CAPEM
		}
	})
	s := f.s
	if _, err := s.dev.LoadConjurPolicy(conjurdev.ModePatch, "apps", []byte(newVariable)); err != nil {
		t.Fatal(err)
	}
	s.set(t, newVar, randomValue(newVar), s.secrets)
	return f
}

// postStatus POSTs an empty body to path on l and returns the status.
func postStatus(t *testing.T, l *conjurdev.Listener, path string) int {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(l.CAPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Post(l.URL+path, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// reads counts the fetch requests a server has seen.
func reads(d *conjurdev.Server) int64 {
	return d.Count(conjurdev.EpSecret) + d.Count(conjurdev.EpBatch)
}
