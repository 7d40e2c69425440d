package conjur

import (
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Values cached under one identity are not served once a handoff has made
// another identity current: the new identity may not see them.
func TestCacheIsNotServedAcrossAHandoff(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	if _, err := s.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(
		"- !host\n  id: swarm/other\n  annotations:\n    authn-jwt/"+jwtService+"/sub: other\n- !permit\n  role: !host swarm/other\n  privilege: authenticate\n  resource: !webservice conjur/authn-jwt/"+jwtService+"\n")); err != nil {
		t.Fatal(err)
	}
	// No pinned login: a pinned plugin refuses a JWT of another host
	// (TestJWTHandoffOfAnotherHostIsRefused), so the identity can change
	// only where none is pinned.
	cfg := clientConfig("", s.listen(t, false).URL)
	cfg.Login = ""
	cfg.CacheTTL = time.Minute
	cfg.JWTServiceID = jwtService
	c := newClient(t, cfg)
	mine, err := s.jwt.Sign(map[string]any{"sub": "conjur-plugin"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Adopt(t.Context(), credential.Credential{JWT: redact.String(mine)}); err != nil {
		t.Fatalf("JWT handoff of the plugin's host: %+v", err)
	}
	mustGet(t, c, varID(0))
	if v := mustGet(t, c, varID(0)); !v.Cached {
		t.Fatal("the value was not cached")
	}

	jwt, err := s.jwt.Sign(map[string]any{"sub": "other"}, time.Minute) // host swarm/other: no access to apps/*
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Adopt(t.Context(), credential.Credential{JWT: redact.String(jwt)}); err != nil {
		t.Fatalf("JWT handoff: %+v", err)
	}
	v, err := c.Get(t.Context(), Ref{ID: varID(0)})
	if v.Cached || err == nil {
		t.Fatalf("after the handoff to swarm/other: %v, %v; want a refusal, not the cached value", v, err)
	}
}
