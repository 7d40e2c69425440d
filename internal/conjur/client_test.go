package conjur

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// The headline: a burst of 1,000 concurrent fetches of 100 distinct
// variables costs at most one authentication and at most 10 secret requests.
// The burst is made to arrive at once, whatever the machine's load: the
// first authentication is held at the server until every Get is inside the
// client (joined to a fetch or queued for a batch), and only then answered.
func TestBurstCoalescesAndBatches(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/authn") {
			<-release
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	cfg := clientConfig(s.key, hs.URL)
	cfg.FetchTimeout = 25 * time.Second // the burst's calls wait for the last Get to arrive: a bound, not a measure
	c := newClient(t, cfg)

	const n = 1000
	var wg sync.WaitGroup
	var failed, wrong, coalesced atomic.Int64
	for i := range n {
		wg.Go(func() {
			id := i % nVars
			v, err := c.Get(context.Background(), Ref{ID: varID(id)})
			switch {
			case err != nil:
				failed.Add(1)
				t.Errorf("Get(%s): %+v", varID(id), err)
			case string(v.Data) != varValue(id):
				wrong.Add(1)
			case v.Coalesced:
				coalesced.Add(1)
			}
		})
	}
	waitArrived(t, c, n)
	close(release)
	wg.Wait()

	authn, secrets := s.Count(conjurdev.EpAuthn), s.secretRequests()
	t.Logf("%d fetches: %d authentications, %d batch + %d single secret requests, %d coalesced",
		n, authn, s.Count(conjurdev.EpBatch), s.Count(conjurdev.EpSecret), coalesced.Load())
	if failed.Load() != 0 || wrong.Load() != 0 {
		t.Fatalf("%d failed, %d wrong values", failed.Load(), wrong.Load())
	}
	if authn > 1 {
		t.Errorf("%d authentications, want at most 1", authn)
	}
	if secrets > 10 {
		t.Errorf("%d secret requests, want at most 10", secrets)
	}
	if coalesced.Load() == 0 {
		t.Error("no Get reported Coalesced although 10 callers asked for each variable")
	}
}

// waitArrived waits until n Gets are inside c's batcher: each joined to a
// fetch or queued for a batch (none can end while authentication is held).
func waitArrived(t *testing.T, c *Client, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a failure guard only
	for {
		c.batch.mu.Lock()
		arrived := 0
		for _, cl := range c.batch.inflight {
			arrived += 1 + cl.joined
		}
		c.batch.mu.Unlock()
		if arrived >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d Gets reached the client's batcher", arrived, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// With the first URL failing in each of these ways, every fetch succeeds on
// the second; the first is set aside.
func TestFailoverFirstURLDown(t *testing.T) {
	good := newDevServer(t, conjurdev.Options{})
	goodURL := good.listen(t, false).URL
	faulty := func(set func(*conjurdev.Faults)) func(t *testing.T) string {
		return func(t *testing.T) string {
			s := newDevServer(t, conjurdev.Options{})
			set(s.Faults())
			return s.listen(t, false).URL
		}
	}
	tests := []struct {
		name  string
		first func(t *testing.T) string
	}{
		{"ok/closed listener", func(t *testing.T) string { return deadURL(t) }},
		{"ok/503 on everything", faulty(func(f *conjurdev.Faults) { f.SetStatus(503, 1) })},
		{"ok/405 like a misrouted follower", faulty(func(f *conjurdev.Faults) { f.SetStatus(405, 1) })},
		{"ok/connection dropped", faulty(func(f *conjurdev.Faults) { f.SetDrop(1) })},
		{"ok/slower than the fetch timeout", faulty(func(f *conjurdev.Faults) { f.SetLatency(2 * time.Second) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := tt.first(t)
			good.ResetCounts()
			cfg := clientConfig(good.key, first, goodURL)
			cfg.FetchTimeout = time.Second
			c := newClient(t, cfg)
			var wg sync.WaitGroup
			var failed atomic.Int64
			for i := range 50 {
				wg.Go(func() {
					v, err := c.Get(t.Context(), Ref{ID: varID(i)})
					if err != nil || string(v.Data) != varValue(i) {
						failed.Add(1)
						t.Errorf("Get(%s) = %v, %+v", varID(i), v, err)
					}
				})
			}
			wg.Wait()
			for i := range 5 { // sequential ones after the URL was set aside
				if v := mustGet(t, c, varID(i)); v.URL != goodURL {
					t.Errorf("answered by %s, want %s", v.URL, goodURL)
				}
			}
			st := c.Status()
			if st.URLs[0].Healthy || st.URLs[0].Failures == 0 || st.URLs[0].RetryAt.IsZero() || st.URLs[0].LastError == "" {
				t.Errorf("first URL not set aside: %+v", st.URLs[0])
			}
			if !st.URLs[1].Healthy || st.LastURL != goodURL || st.LastContact.IsZero() {
				t.Errorf("status = %+v", st)
			}
			if n := good.Count(conjurdev.EpAuthn); n != 1 {
				t.Errorf("%d authentications at the good URL, want 1", n)
			}
		})
	}
}

func TestAllURLsDownIsUnavailable(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	s.Faults().SetStatus(503, 1)
	c := newClient(t, clientConfig(s.key, deadURL(t), s.listen(t, false).URL))
	_, err := c.Get(t.Context(), Ref{ID: varID(1)})
	if CodeOf(err) != errcode.Unavailable {
		t.Fatalf("err = %+v, want UNAVAILABLE", err)
	}
	for _, want := range []string{"no Conjur appliance answered", "503", "CONJUR_APPLIANCE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %s", want, err)
		}
	}
	if st := c.Status(); st.LastErrorCode != errcode.Unavailable || st.URLs[0].Healthy || st.URLs[1].Healthy {
		t.Errorf("status = %+v", st)
	}
}

// 401/403/404 are answers: not retried on the next URL.
func TestAnswersAreNotRetriedElsewhere(t *testing.T) {
	a := newDevServer(t, conjurdev.Options{})
	b := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(a.key, a.listen(t, false).URL, b.listen(t, false).URL))
	for _, id := range []string{"apps/read-only", "apps/missing", "restricted/hidden"} {
		if _, err := c.Get(t.Context(), Ref{ID: id}); err == nil {
			t.Fatalf("Get(%s) succeeded", id)
		}
	}
	if n := b.Count(conjurdev.EpAuthn) + b.secretRequests(); n != 0 {
		t.Errorf("second URL saw %d requests, want 0", n)
	}
	bad := newClient(t, clientConfig("wrong-key", a.listen(t, false).URL, b.listen(t, false).URL))
	if _, err := bad.Get(t.Context(), Ref{ID: varID(0)}); CodeOf(err) != errcode.AuthRefused {
		t.Fatalf("wrong key: %+v, want AUTH_REFUSED", err)
	}
	if n := b.Count(conjurdev.EpAuthn); n != 0 {
		t.Errorf("refused authentication was retried on the second URL (%d)", n)
	}
}

// ExpireTokens makes Conjur answer 401 to the token in hand: the client
// re-authenticates once and the fetch succeeds.
func TestExpiredTokenIsRenewedOn401(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	mustGet(t, c, varID(1))
	for round := range 3 {
		s.ExpireTokens()
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() { mustGet(t, c, varID(i)) })
		}
		wg.Wait()
		if n := s.Count(conjurdev.EpAuthn); n != int64(round+2) {
			t.Fatalf("after expiry %d: %d authentications, want %d", round+1, n, round+2)
		}
	}
}

// A token whose lifetime runs out is replaced before it expires: refresh in
// the background from 80%, wait for a new one from 95%.
func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	var offset atomic.Int64
	c.sess.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }

	mustGet(t, c, varID(1))
	exp := c.Status().TokenExpiresAt
	if d := time.Until(exp); d < 7*time.Minute || d > 9*time.Minute {
		t.Fatalf("token expires in %s, want about 8m (conjurdev default)", d)
	}
	offset.Store(int64(7*time.Minute + 36*time.Second)) // 95%: must wait for a new token
	mustGet(t, c, varID(2))
	if n := s.Count(conjurdev.EpAuthn); n != 2 {
		t.Fatalf("%d authentications at 95%% of the lifetime, want 2", n)
	}
	if !c.Status().TokenExpiresAt.After(exp) {
		t.Fatal("token not replaced")
	}
	offset.Store(int64(7*time.Minute+36*time.Second) + int64(6*time.Minute+40*time.Second)) // 83% of the new one
	mustGet(t, c, varID(3))                                                                 // served with the old token
	waitFor(t, func() bool { return s.Count(conjurdev.EpAuthn) == 3 }, "background refresh")
}

// With a real short TTL, fetches keep succeeding across several token lifetimes.
func TestShortTokenTTLNeverFailsAFetch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 2.5s")
	}
	s := newDevServer(t, conjurdev.Options{TokenTTL: time.Second})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for i := 0; s.Count(conjurdev.EpAuthn) < 3; i++ {
		select {
		case <-deadline:
			t.Fatalf("only %d authentications", s.Count(conjurdev.EpAuthn))
		case <-tick.C:
		}
		mustGet(t, c, varID(i%nVars))
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A server slower than FetchTimeout yields TIMEOUT, whether it is slow to
// authenticate or to answer the fetch.
func TestSlowServerTimesOut(t *testing.T) {
	for _, warm := range []bool{false, true} {
		t.Run(fmt.Sprintf("ok/token warm=%t", warm), func(t *testing.T) {
			s := newDevServer(t, conjurdev.Options{})
			cfg := clientConfig(s.key, s.listen(t, false).URL)
			cfg.FetchTimeout = 300 * time.Millisecond
			c := newClient(t, cfg)
			if warm {
				mustGet(t, c, varID(0))
			}
			s.Faults().SetLatency(time.Second)
			_, errs := fetchAll(c, t.Context(), []Ref{{ID: varID(1)}, {ID: varID(2)}, {ID: varID(3), Version: 1}})
			for i, err := range errs {
				if CodeOf(err) != errcode.Timeout {
					t.Fatalf("err %d = %+v, want TIMEOUT", i, err)
				}
				if !strings.Contains(err.Error(), "CONJUR_SWARM_FETCH_TIMEOUT") {
					t.Errorf("message does not say what to do: %s", err)
				}
			}
		})
	}
}

func TestCallerCancelIsCanceled(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Get(ctx, Ref{ID: varID(0)}); CodeOf(err) != errcode.Canceled {
		t.Fatalf("err = %+v, want CANCELED", err)
	}
}

// One forbidden, one missing, one invisible and one never-set variable among
// good ones: the good ones arrive, each failure is reported on its own.
func TestBatchWithFailingVariables(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	refs := []Ref{}
	want := map[string]errcode.Code{}
	for i := range 40 {
		refs = append(refs, Ref{ID: varID(i)})
		want[varID(i)] = ""
	}
	bad := map[string]errcode.Code{
		"apps/read-only":    errcode.Forbidden,
		"apps/missing":      errcode.NotFound,
		"restricted/hidden": errcode.NotFound,
		"apps/empty":        errcode.NotFound,
	}
	pos := 3
	for id, code := range bad {
		refs = append(refs[:pos], append([]Ref{{ID: id}}, refs[pos:]...)...)
		want[id] = code
		pos += 9
	}
	refs = append(refs, Ref{ID: "apps/bin"})
	want["apps/bin"] = ""

	vals, errs := fetchAll(c, t.Context(), refs)
	for i, ref := range refs {
		if got := CodeOf(errs[i]); got != want[ref.ID] {
			t.Errorf("%s: code %q (%v), want %q", ref.ID, got, errs[i], want[ref.ID])
			continue
		}
		if errs[i] != nil {
			var e *Error
			if !asError(errs[i], &e) || e.Variable != ref.ID {
				t.Errorf("%s: error names variable %q", ref.ID, e.Variable)
			}
			continue
		}
		wantVal := []byte(nil)
		if ref.ID == "apps/bin" {
			wantVal = binaryValue()
		} else {
			wantVal = []byte(varValue(int(ref.ID[6]-'0')*100 + int(ref.ID[7]-'0')*10 + int(ref.ID[8]-'0')))
		}
		if !bytes.Equal(vals[i].Data, wantVal) {
			t.Errorf("%s = %q, want %q", ref.ID, vals[i].Data, wantVal)
		}
	}
	t.Logf("%d refs (4 failing): %d batch + %d single requests", len(refs), s.Count(conjurdev.EpBatch), s.Count(conjurdev.EpSecret))
	if n := s.secretRequests(); n > 30 {
		t.Errorf("%d secret requests to isolate 4 failures among %d: the fallback is not bounded", n, len(refs))
	}

	var forbidden error
	for i, ref := range refs {
		if ref.ID == "apps/read-only" {
			forbidden = errs[i]
		}
	}
	for _, w := range []string{pluginLogin, "apps/read-only", "lacks execute", "!permit"} {
		if !strings.Contains(forbidden.Error(), w) {
			t.Errorf("FORBIDDEN message lacks %q: %s", w, forbidden)
		}
	}
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

func TestBinaryAndVersionedValues(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	if err := s.SetSecret(varID(7), []byte("second")); err != nil {
		t.Fatal(err)
	}
	vals, errs := fetchAll(c, t.Context(), []Ref{{ID: "apps/bin"}, {ID: varID(7)}, {ID: varID(7), Version: 1}, {ID: varID(7), Version: 9}})
	got := []string{string(vals[0].Data), string(vals[1].Data), string(vals[2].Data)}
	want := []string{string(binaryValue()), "second", varValue(7)}
	for i := range want {
		if errs[i] != nil || got[i] != want[i] {
			t.Errorf("ref %d = %q, %v; want %q", i, got[i], errs[i], want[i])
		}
	}
	if CodeOf(errs[3]) != errcode.NotFound {
		t.Errorf("missing version: %+v, want NOT_FOUND", errs[3])
	}
	if n := s.Count(conjurdev.EpSecret); n != 2 {
		t.Errorf("%d single requests, want 2 (the versioned refs)", n)
	}
}

func TestValueCache(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	cfg := clientConfig(s.key, s.listen(t, false).URL)
	cfg.CacheTTL = time.Minute
	c := newClient(t, cfg)
	var offset atomic.Int64
	c.sess.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }

	first := mustGet(t, c, varID(1))
	second := mustGet(t, c, varID(1))
	if first.Cached || !second.Cached || string(second.Data) != varValue(1) {
		t.Fatalf("first %v, second %v", first, second)
	}
	second.Data[0] = 'X' // a caller's copy; the cache must not change
	if v := mustGet(t, c, varID(1)); string(v.Data) != varValue(1) {
		t.Fatalf("cache shares its bytes with callers: %q", v.Data)
	}
	if v, _ := c.Get(t.Context(), Ref{ID: varID(1), NoCache: true}); v.Cached {
		t.Fatal("NoCache served from cache")
	}
	if n := s.secretRequests(); n != 2 {
		t.Fatalf("%d secret requests, want 2 (first and NoCache)", n)
	}
	offset.Store(int64(2 * time.Minute))
	if v := mustGet(t, c, varID(1)); v.Cached {
		t.Fatal("served after the TTL")
	}
}

func TestCacheOffByDefault(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	mustGet(t, c, varID(1))
	if v := mustGet(t, c, varID(1)); v.Cached {
		t.Fatal("cached without CacheTTL")
	}
	if n := s.secretRequests(); n != 2 {
		t.Fatalf("%d secret requests, want 2", n)
	}
}

func TestAdopt(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	cfg := clientConfig("", s.listen(t, false).URL)
	c := newClient(t, cfg)
	ctx := t.Context()

	if _, err := c.Get(ctx, Ref{ID: varID(0)}); CodeOf(err) != errcode.NoCredential {
		t.Fatalf("before handoff: %+v, want NO_CREDENTIAL", err)
	}
	err := c.Adopt(ctx, credential.Credential{Login: "host/other", APIKey: redact.String(s.key)})
	if CodeOf(err) != errcode.CredentialRejected || !strings.Contains(err.Error(), pluginLogin) {
		t.Fatalf("wrong login: %+v, want CREDENTIAL_REJECTED naming %s", err, pluginLogin)
	}
	if n := s.Count(conjurdev.EpAuthn); n != 0 {
		t.Fatalf("a handoff for the wrong login reached Conjur (%d)", n)
	}
	if err := c.Adopt(ctx, credential.Credential{Login: pluginLogin, APIKey: "wrong-key"}); CodeOf(err) != errcode.AuthRefused {
		t.Fatalf("wrong key: %+v, want AUTH_REFUSED", err)
	}
	if _, err := c.Get(ctx, Ref{ID: varID(0)}); CodeOf(err) != errcode.NoCredential {
		t.Fatalf("a refused handoff was adopted: %+v", err)
	}

	good := credential.Credential{Login: pluginLogin, APIKey: redact.String(s.key)}
	if err := c.Adopt(ctx, good); err != nil {
		t.Fatalf("good handoff: %+v", err)
	}
	mustGet(t, c, varID(0))
	st := c.Status()
	if st.CredentialSource != "handoff" || st.CredentialFingerprint != good.Fingerprint() || st.CredentialSetAt.IsZero() || st.Login != pluginLogin {
		t.Fatalf("status after handoff = %+v", st)
	}
	if n := s.Count(conjurdev.EpAuthn); n != 2 {
		t.Errorf("%d authentications, want 2 (refused + adopted; the token is reused)", n)
	}
	if err := c.Adopt(ctx, good); err != nil {
		t.Fatalf("same handoff again: %+v", err)
	}

	if err := c.Adopt(ctx, credential.Credential{Login: pluginLogin, APIKey: "another-wrong-key"}); CodeOf(err) != errcode.AuthRefused {
		t.Fatalf("wrong key later: %+v, want AUTH_REFUSED", err)
	}
	s.ExpireTokens() // force a re-authentication: it must use the kept credential
	mustGet(t, c, varID(1))
	if st := c.Status(); st.CredentialFingerprint != good.Fingerprint() {
		t.Fatalf("the old credential was not kept: %+v", st)
	}

	// A rotated key handed over replaces the old one.
	newKey, err := s.RotateAPIKey(pluginRole)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Adopt(ctx, credential.Credential{Login: pluginLogin, APIKey: redact.String(newKey)}); err != nil {
		t.Fatalf("rotated handoff: %+v", err)
	}
	s.ExpireTokens()
	mustGet(t, c, varID(2))
	if st := c.Status(); st.CredentialFingerprint != (credential.Credential{Login: pluginLogin, APIKey: redact.String(newKey)}).Fingerprint() {
		t.Fatalf("status after rotation = %+v", st)
	}
}

func TestCredentialFileIsReread(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	path := filepath.Join(t.TempDir(), "credential")
	cfg := clientConfig("", s.listen(t, false).URL)
	cfg.CredentialFile = path
	c := newClient(t, cfg)

	if _, err := c.Get(t.Context(), Ref{ID: varID(0)}); CodeOf(err) != errcode.NoCredential || !strings.Contains(err.Error(), path) {
		t.Fatalf("missing file: %+v, want NO_CREDENTIAL naming the file", err)
	}
	if err := os.WriteFile(path, []byte(s.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, varID(0))

	newKey, err := s.RotateAPIKey(pluginRole)
	if err != nil {
		t.Fatal(err)
	}
	js := fmt.Sprintf(`{"login":%q,"api_key":%q}`, pluginLogin, newKey)
	if err := os.WriteFile(path, []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
	s.ExpireTokens()
	mustGet(t, c, varID(1))
	st := c.Status()
	if st.CredentialSource != "file" || st.CredentialFingerprint != (credential.Credential{Login: pluginLogin, APIKey: redact.String(newKey)}).Fingerprint() {
		t.Fatalf("status = %+v", st)
	}

	if err := os.WriteFile(path, []byte(`{"login":"host/intruder","api_key":"k"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.ExpireTokens()
	if _, err := c.Get(t.Context(), Ref{ID: varID(2)}); CodeOf(err) != errcode.CredentialRejected {
		t.Fatalf("file for another login: %+v, want CREDENTIAL_REJECTED", err)
	}
}

func TestJWTFileIsReread(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	path := filepath.Join(t.TempDir(), "jwt")
	writeJWT := func(ttl time.Duration, sub string) {
		t.Helper()
		tok, err := s.jwt.Sign(map[string]any{"sub": sub}, ttl)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := clientConfig("", s.listen(t, false).URL)
	cfg.Login = ""
	cfg.JWTServiceID, cfg.JWTTokenPath = jwtService, path
	c := newClient(t, cfg)

	if _, err := c.Get(t.Context(), Ref{ID: varID(0)}); CodeOf(err) != errcode.NoCredential {
		t.Fatalf("no JWT file: %+v, want NO_CREDENTIAL", err)
	}
	writeJWT(time.Minute, "conjur-plugin")
	mustGet(t, c, varID(0))

	writeJWT(-time.Minute, "conjur-plugin") // expired: a client that cached the JWT would not notice
	s.ExpireTokens()
	_, err := c.Get(t.Context(), Ref{ID: varID(1)})
	if CodeOf(err) != errcode.AuthRefused || !strings.Contains(err.Error(), path) {
		t.Fatalf("expired JWT: %+v, want AUTH_REFUSED naming the file", err)
	}

	writeJWT(time.Minute, "conjur-plugin")
	mustGet(t, c, varID(2))
	if n := s.Count(conjurdev.EpAuthnJWT); n != 3 {
		t.Errorf("%d authn-jwt requests, want 3 (one per JWT read)", n)
	}
	if st := c.Status(); st.CredentialSource != "jwt" || st.CredentialFingerprint == "" {
		t.Errorf("status = %+v", st)
	}
}

func TestJWTHandoff(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	cfg := clientConfig("", s.listen(t, false).URL)
	cfg.JWTServiceID = jwtService
	c := newClient(t, cfg)
	jwt, err := s.jwt.Sign(map[string]any{"sub": "conjur-plugin"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Adopt(t.Context(), credential.Credential{JWT: redact.String(jwt)}); err != nil {
		t.Fatalf("JWT handoff: %+v", err)
	}
	mustGet(t, c, varID(0))
}

func TestTLS(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	l := s.listen(t, true)

	cfg := clientConfig(s.key, l.URL)
	cfg.AllowHTTP, cfg.CACertPEM = false, l.CAPEM
	mustGet(t, newClient(t, cfg), varID(0))

	cfg.CACertPEM = nil // system roots do not know the dev CA
	_, err := newClient(t, cfg).Get(t.Context(), Ref{ID: varID(0)})
	if CodeOf(err) != errcode.TLS || !strings.Contains(err.Error(), "CONJUR_CERT_FILE") {
		t.Fatalf("unknown CA: %+v, want TLS saying what to set", err)
	}
}

// The batch answer must be base64 (binary-safe); a Conjur that ignores
// Accept-Encoding: base64 yields VALUE_UNUSABLE, not garbage.
func TestBatchWithoutBase64IsUnusable(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	strip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Accept-Encoding")
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(strip.Close)
	c := newClient(t, clientConfig(s.key, strip.URL))
	_, errs := fetchAll(c, t.Context(), []Ref{{ID: varID(1)}, {ID: varID(2)}})
	for _, err := range errs {
		if CodeOf(err) != errcode.ValueUnusable {
			t.Fatalf("err = %+v, want VALUE_UNUSABLE", err)
		}
	}
}

func TestErrorsNeverHoldSecrets(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	l := s.listen(t, false)
	c := newClient(t, clientConfig("not-the-key-"+s.key, l.URL))
	_, err := c.Get(t.Context(), Ref{ID: varID(0)})
	c2 := newClient(t, clientConfig(s.key, l.URL))
	_, errs := fetchAll(c2, t.Context(), []Ref{{ID: "apps/read-only"}, {ID: varID(1)}, {ID: "apps/missing"}})
	all := append([]error{err}, errs...)
	for _, e := range all {
		if e == nil {
			continue
		}
		text := fmt.Sprintf("%v %+v", e, e)
		for _, secret := range []string{s.key, varValue(1), "ro"} {
			if strings.Contains(text, secret) && secret != "ro" || strings.Contains(text, `"ro"`) {
				t.Fatalf("error holds a secret: %s", text)
			}
		}
	}
}

func TestStatusTracksContact(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	l := s.listen(t, false)
	c := newClient(t, clientConfig(s.key, l.URL))
	before := time.Now()
	if _, err := c.Get(t.Context(), Ref{ID: "apps/missing"}); CodeOf(err) != errcode.NotFound {
		t.Fatal(err)
	}
	st := c.Status()
	if st.LastContact.Before(before) || st.LastURL != l.URL || st.LastErrorCode != errcode.NotFound || st.TokenExpiresAt.IsZero() {
		t.Fatalf("status = %+v", st)
	}
	if st.CredentialSource != "env" || st.CredentialFingerprint != (credential.Credential{Login: pluginLogin, APIKey: redact.String(s.key)}).Fingerprint() {
		t.Fatalf("credential status = %+v", st)
	}
}

// Each waiter of a shared call honours its own deadline; the call goes on for
// the others, and the authentication they all wait for runs once.
func TestWaitersHonourTheirOwnContext(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	s.Faults().SetLatency(200 * time.Millisecond)

	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var shortErr error
	var long []error
	var mu sync.Mutex
	wg.Go(func() { _, shortErr = c.Get(short, Ref{ID: varID(5)}) })
	for range 5 {
		wg.Go(func() {
			v, err := c.Get(t.Context(), Ref{ID: varID(5)})
			if err == nil && string(v.Data) != varValue(5) {
				err = fmt.Errorf("wrong value %q", v.Data)
			}
			mu.Lock()
			long = append(long, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	if CodeOf(shortErr) != errcode.Timeout {
		t.Errorf("short caller: %+v, want TIMEOUT", shortErr)
	}
	for _, err := range long {
		if err != nil {
			t.Errorf("long caller: %+v", err)
		}
	}
	if a, r := s.Count(conjurdev.EpAuthn), s.secretRequests(); a != 1 || r != 1 {
		t.Errorf("%d authentications and %d secret requests, want 1 and 1", a, r)
	}
}

// Near expiry, a refresh that fails does not fail the fetch while the token
// in hand is still valid.
func TestFailedRefreshKeepsUnexpiredToken(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	var authnDown atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if authnDown.Load() && strings.HasPrefix(r.URL.Path, "/authn/") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	c := newClient(t, clientConfig(s.key, front.URL))
	var offset atomic.Int64
	c.sess.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }

	mustGet(t, c, varID(1))
	authnDown.Store(true)
	offset.Store(int64(7*time.Minute + 40*time.Second)) // 96% of 8m
	mustGet(t, c, varID(2))
	offset.Store(int64(9 * time.Minute)) // expired: now the refresh failure shows
	if _, err := c.Get(t.Context(), Ref{ID: varID(3)}); CodeOf(err) != errcode.Unavailable {
		t.Fatalf("expired token and authn down: %+v, want UNAVAILABLE", err)
	}
}

// A large Fetch is cut into batches whose query stays under common URL limits.
func TestBatchQueryIsBounded(t *testing.T) {
	var mu sync.Mutex
	var longest, batches int
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/authn/"):
			now := time.Now().Unix()
			w.Write(tokenJSON(fmt.Sprintf(`{"sub":"x","iat":%d,"exp":%d}`, now, now+480)))
		case r.URL.Path == "/secrets" || r.URL.Path == "/secrets/":
			mu.Lock()
			batches++
			longest = max(longest, len(r.URL.RawQuery))
			mu.Unlock()
			out := map[string]string{}
			for _, id := range strings.Split(r.URL.Query().Get("variable_ids"), ",") {
				out[id] = base64Encode([]byte("v:" + id))
			}
			w.Header().Set("Content-Encoding", "base64")
			writeJSONTest(w, out)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(fake.Close)
	cfg := clientConfig("key", fake.URL)
	cfg.MaxBatch = 500
	c := newClient(t, cfg)
	refs := make([]Ref, 400)
	for i := range refs {
		refs[i] = Ref{ID: fmt.Sprintf("apps/some-rather-long-application-name/env/production/secret-%03d", i)}
	}
	vals, errs := fetchAll(c, t.Context(), refs)
	for i := range refs {
		if errs[i] != nil || string(vals[i].Data) != "v:dev:variable:"+refs[i].ID {
			t.Fatalf("ref %d: %q, %+v", i, vals[i].Data, errs[i])
		}
	}
	t.Logf("%d batches, longest query %d bytes", batches, longest)
	if longest > maxBatchQuery+len("variable_ids=") {
		t.Errorf("a batch query is %d bytes, over the %d bound", longest, maxBatchQuery)
	}
}

func base64Encode(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func writeJSONTest(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Close ends requests in flight with UNAVAILABLE and leaves no goroutine.
func TestCloseEndsRequestsInFlight(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	s.Faults().SetLatency(300 * time.Millisecond)
	cfg := clientConfig(s.key, s.listen(t, false).URL)
	cfg.FetchTimeout = 5 * time.Second
	c, err := New(cfg, quietLog(t))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := c.Get(context.Background(), Ref{ID: varID(i)})
			errc <- err
		}()
	}
	waitFor(t, func() bool {
		c.batch.mu.Lock()
		defer c.batch.mu.Unlock()
		return len(c.batch.inflight) == 3
	}, "three calls in flight")
	c.Close()
	for range 3 {
		if err := <-errc; CodeOf(err) != errcode.Unavailable || !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("after Close: %+v, want UNAVAILABLE (shutting down)", err)
		}
	}
}
