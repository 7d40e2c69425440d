package driver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// healthGet GETs path from srv and decodes the JSON body into out.
func healthGet(t *testing.T, srv *httptest.Server, path string, out any) int {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("%s: %v in %s", path, err, body)
	}
	return resp.StatusCode
}

// check returns the check named name of rd.
func check(t *testing.T, rd Readiness, name string) ReadyCheck {
	t.Helper()
	for _, c := range rd.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("readiness %+v has no %s check", rd, name)
	return ReadyCheck{}
}

// /healthz and /readyz over HTTP, against the real Conjur client and a
// Conjur-compatible server (issue 26 item 5): alive from the start; ready
// only once a credential is adopted and Conjur answered within the
// interval; when no request reached Conjur within it, /readyz asks Conjur
// (whoami) itself; not ready while Conjur is down, nor without a mapping
// policy in force.
func TestHealthAndReadinessOverHTTP(t *testing.T) {
	s := newStack(t)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	cfg := s.conjurConfig()
	cfg.APIKey, cfg.Now = "", now
	c, err := conjur.New(cfg, s.log.Named("conjur"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	policyStatus := &switchPolicy{PolicyReporter: s.store}
	d, err := New(Options{Resolver: s.store, PolicyStatus: policyStatus, Conjur: c, Account: s.dev.Account(), ApplianceURLs: []string{s.url},
		Logger: s.log.Named("driver"), Version: "v9.9.9", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.HealthHandler())
	t.Cleanup(srv.Close)

	var live Liveness
	if code := healthGet(t, srv, "/healthz", &live); code != http.StatusOK || !live.Alive || live.Version != "v9.9.9" {
		t.Fatalf("/healthz: %d %+v", code, live)
	}
	var rd Readiness
	if code := healthGet(t, srv, "/readyz", &rd); code != http.StatusServiceUnavailable || rd.Ready {
		t.Fatalf("/readyz with no credential: %d %+v, want 503", code, rd)
	}
	if cr := check(t, rd, "credential"); cr.OK || !strings.Contains(cr.Detail, "bootstrap agent") {
		t.Fatalf("credential check %+v: want not ok, saying what to do", cr)
	}
	if m := check(t, rd, "mapping"); !m.OK {
		t.Fatalf("mapping check %+v", m)
	}

	if ans, _ := d.Bootstrap(t.Context(), strings.NewReader(s.handoff(pluginLogin, s.apiKey))); !ans.OK {
		t.Fatalf("handoff: %s", ans.Err)
	}
	offset.Add(int64(2 * DefaultReadyInterval)) // the handoff's contact is old: /readyz asks Conjur
	before := s.dev.Count(conjurdev.EpWhoami)
	if code := healthGet(t, srv, "/readyz", &rd); code != http.StatusOK || !rd.Ready {
		t.Fatalf("/readyz after the handoff: %d %+v, want 200", code, rd)
	}
	if s.dev.Count(conjurdev.EpWhoami) != before+1 {
		t.Fatal("/readyz did not ask Conjur when its last answer was older than the interval")
	}
	healthGet(t, srv, "/readyz", &rd)
	if s.dev.Count(conjurdev.EpWhoami) != before+1 {
		t.Fatal("/readyz asked Conjur again within the interval")
	}

	s.down(t)
	offset.Add(int64(2 * DefaultReadyInterval))
	if code := healthGet(t, srv, "/readyz", &rd); code != http.StatusServiceUnavailable || rd.Ready {
		t.Fatalf("/readyz with Conjur down: %d %+v, want 503", code, rd)
	}
	if cj := check(t, rd, "conjur"); cj.OK || !strings.Contains(cj.Detail, "[UNAVAILABLE]") {
		t.Fatalf("conjur check %+v: want not ok, naming the error", cj)
	}
	if code := healthGet(t, srv, "/healthz", &live); code != http.StatusOK {
		t.Fatalf("/healthz with Conjur down: %d, want 200 (the process is alive)", code)
	}

	policyStatus.failClosed.Store(true)
	healthGet(t, srv, "/readyz", &rd)
	if m := check(t, rd, "mapping"); m.OK {
		t.Fatalf("mapping check %+v with no policy in force: want not ok", m)
	}
}

// switchPolicy reports the store's status, or no policy in force.
type switchPolicy struct {
	PolicyReporter
	failClosed atomic.Bool
}

func (p *switchPolicy) Status() policy.StoreStatus {
	if p.failClosed.Load() {
		return policy.StoreStatus{FailClosed: true, LastError: "mapping.yml:1:1: missing rules"}
	}
	return p.PolicyReporter.Status()
}

// docs/install.md shows the exact JSON of /healthz and /readyz: these
// answers, as the handler encodes them, each on its line of a json block.
func TestInstallDocShowsTheHealthJSON(t *testing.T) {
	at := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	d, err := New(Options{Resolver: &fakeResolver{}, Conjur: &fakeConjur{}, Logger: zap.NewNop(), Version: "v1.4.0",
		Now: func() time.Time { return at.Add(5 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	ready := conjur.Status{CredentialSource: "handoff", CredentialFingerprint: "777bef257a50b278", LastContact: at.Add(4 * time.Minute), LastURL: "https://conjur.example.com"}
	down := ready
	down.LastContact, down.LastErrorCode, down.LastError = at, "UNAVAILABLE", "no Conjur appliance answered (https://conjur.example.com: connection refused): check that Conjur is up and reachable from this node, and CONJUR_APPLIANCE_URL"
	mapping := ReadyCheck{Name: "mapping", OK: true, Detail: "/etc/conjur-swarm/mapping/mapping.yml sha256:bbf46dfd6b06"}
	answers := []any{
		Liveness{Alive: true, Version: "v1.4.0", StartedAt: at},
		Readiness{Ready: true, Checks: []ReadyCheck{mapping, credentialCheck(ready, nil), d.conjurCheck(ready)}},
		Readiness{Checks: []ReadyCheck{mapping, credentialCheck(down, nil), d.conjurCheck(down)}},
		Readiness{Checks: []ReadyCheck{mapping, credentialCheck(conjur.Status{CredentialSource: "none"}, nil), d.conjurCheck(conjur.Status{})}},
	}
	doc := string(mustRead(t, "../../docs/install.md"))
	for _, a := range answers {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(doc, "```json\n"+string(b)+"\n```") {
			t.Errorf("docs/install.md lacks this answer in a json block:\n%s", b)
		}
	}
}
