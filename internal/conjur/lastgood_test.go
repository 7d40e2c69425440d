package conjur

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

func TestLastGoodLRU(t *testing.T) {
	l := newLastGood(3)
	t0 := time.Now()
	for i := range 4 {
		l.put(lastGoodKey{"", fmt.Sprintf("v%d", i), 0}, []byte{byte(i)}, t0)
		if i == 2 {
			l.get(lastGoodKey{"", "v0", 0}, time.Minute, t0) // v0 used: v1 is now the least recently used
		}
	}
	if l.len() != 3 {
		t.Fatalf("%d values held, want at most 3", l.len())
	}
	if _, _, ok := l.get(lastGoodKey{"", "v1", 0}, time.Minute, t0); ok {
		t.Error("v1, the least recently used, was not dropped")
	}
	for _, id := range []string{"v0", "v2", "v3"} {
		if _, _, ok := l.get(lastGoodKey{"", id, 0}, time.Minute, t0); !ok {
			t.Errorf("%s was dropped", id)
		}
	}
	if _, _, ok := l.get(lastGoodKey{"", "v3", 0}, time.Minute, t0.Add(time.Minute+time.Nanosecond)); ok {
		t.Error("a value older than maxAge was returned")
	}
	l.wipe()
	if l.len() != 0 {
		t.Errorf("%d values after wipe", l.len())
	}
}

// A value fetched with KeepLastGood is held for that exact variable and
// version, for maxAge after Conjur answered it; values served from the
// value cache do not renew it; refs without KeepLastGood are not held.
func TestLastGoodKeepsWhatConjurAnswered(t *testing.T) {
	srv := newDevServer(t, conjurdev.Options{})
	l := srv.listen(t, false)
	cfg := clientConfig(srv.key, l.URL)
	cfg.CacheTTL = 5 * time.Minute
	c := newClient(t, cfg)
	var offset atomic.Int64
	c.sess.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }

	keep := Ref{ID: varID(0), KeepLastGood: true}
	mustGetRef(t, c, keep)
	mustGetRef(t, c, Ref{ID: varID(1)})                                 // not kept
	mustGetRef(t, c, Ref{ID: varID(2), Version: 1, KeepLastGood: true}) // kept at version 1 only

	if v, _, ok := c.LastGood(keep, time.Minute); !ok || string(v.Data) != varValue(0) {
		t.Errorf("LastGood(%s) = %v, %t; want its value", keep.ID, v, ok)
	}
	if _, _, ok := c.LastGood(Ref{ID: varID(1)}, time.Minute); ok {
		t.Error("a value fetched without KeepLastGood is held")
	}
	if _, _, ok := c.LastGood(Ref{ID: varID(2)}, time.Minute); ok {
		t.Error("a value fetched at version 1 answers for the latest version")
	}
	if _, _, ok := c.LastGood(Ref{ID: varID(2), Version: 1}, time.Minute); !ok {
		t.Error("a value fetched at version 1 is not held for version 1")
	}

	// Served from the value cache two minutes later: not renewed.
	offset.Store(int64(2 * time.Minute))
	if v := mustGetRef(t, c, keep); !v.Cached {
		t.Fatalf("second Get not served from the cache: %v", v)
	}
	if _, _, ok := c.LastGood(keep, time.Minute); ok {
		t.Error("a value cache hit renewed the last-good value")
	}
	if _, at, ok := c.LastGood(keep, 3*time.Minute); !ok || c.now().Sub(at) < 2*time.Minute {
		t.Errorf("LastGood within 3m: ok %t, fetched at %s; want the first fetch's time", ok, at)
	}
}

// A value the value cache serves to a KeepLastGood ref is held even when a
// ref without KeepLastGood fetched it (issue 23: a reuse: true rule with
// stale_if_error), as old as Conjur's answer; and the value held is a copy:
// a caller that wipes the one it got (the prefetch store does) leaves it.
func TestLastGoodFromTheValueCacheIsACopyAsOldAsItsFetch(t *testing.T) {
	srv := newDevServer(t, conjurdev.Options{})
	cfg := clientConfig(srv.key, srv.listen(t, false).URL)
	cfg.CacheTTL = 5 * time.Minute
	c := newClient(t, cfg)
	var offset atomic.Int64
	c.sess.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }

	fetched := c.now()
	mustGetRef(t, c, Ref{ID: varID(0)}) // cached, not kept
	offset.Store(int64(2 * time.Minute))
	keep := Ref{ID: varID(0), KeepLastGood: true}
	v := mustGetRef(t, c, keep)
	if !v.Cached {
		t.Fatalf("the KeepLastGood Get was not served from the cache: %v", v)
	}
	clear(v.Data)
	got, at, ok := c.LastGood(keep, 3*time.Minute)
	if !ok || string(got.Data) != varValue(0) {
		t.Fatalf("LastGood after a cache hit: ok %t, value right %t; want the cached value", ok, string(got.Data) == varValue(0))
	}
	if at.Before(fetched) || at.After(fetched.Add(time.Minute)) {
		t.Errorf("held as answered at %s; want the fetch's time %s, not the cache hit's", at, fetched)
	}
	if _, _, ok := c.LastGood(keep, time.Minute); ok {
		t.Error("the cache hit renewed the value's age")
	}
}

// A handoff of the same identity (its rotated key) keeps the values.
func TestLastGoodKeptOnHandoffOfTheSameIdentity(t *testing.T) {
	srv := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(srv.key, srv.listen(t, false).URL))
	ref := Ref{ID: varID(0), KeepLastGood: true}
	mustGetRef(t, c, ref)
	newKey, err := srv.RotateAPIKey(pluginRole)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Adopt(t.Context(), credential.Credential{Login: pluginLogin, APIKey: redact.String(newKey)}); err != nil {
		t.Fatalf("handoff of the rotated key: %+v", err)
	}
	if _, _, ok := c.LastGood(ref, time.Minute); !ok {
		t.Fatal("a handoff of the same identity dropped the last-good values")
	}
}

// A handoff of another identity (possible only with no login pinned, by
// JWT) drops every value: the new identity may not see them.
func TestLastGoodDroppedOnHandoffOfAnotherIdentity(t *testing.T) {
	srv := newDevServer(t, conjurdev.Options{})
	if _, err := srv.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(
		"- !host\n  id: swarm/other\n  annotations:\n    authn-jwt/"+jwtService+"/sub: other\n- !permit\n  role: !host swarm/other\n  privilege: authenticate\n  resource: !webservice conjur/authn-jwt/"+jwtService+"\n")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig("", srv.listen(t, false).URL)
	cfg.Login = ""
	cfg.JWTServiceID = jwtService
	c := newClient(t, cfg)
	for i, sub := range []string{"conjur-plugin", "other"} {
		jwt, err := srv.jwt.Sign(map[string]any{"sub": sub}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Adopt(t.Context(), credential.Credential{JWT: redact.String(jwt)}); err != nil {
			t.Fatalf("JWT handoff of %s: %+v", sub, err)
		}
		if i == 0 {
			mustGetRef(t, c, Ref{ID: varID(0), KeepLastGood: true})
		}
	}
	if _, _, ok := c.LastGood(Ref{ID: varID(0)}, time.Minute); ok {
		t.Fatal("a handoff of another identity kept the last-good values")
	}
}

func mustGetRef(t *testing.T, c *Client, ref Ref) Value {
	t.Helper()
	v, err := c.Get(t.Context(), ref)
	if err != nil {
		t.Fatalf("Get(%+v): %+v", ref, err)
	}
	return v
}
