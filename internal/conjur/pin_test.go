package conjur

import (
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// The handoff accepts only the pinned login, also for a JWT: a JWT that
// Conjur accepts for another host (here host/swarm/other, also permitted to
// authenticate with authn-jwt/swarm) is refused and the credential in use
// stays.
func TestJWTHandoffOfAnotherHostIsRefused(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	other := "- !policy\n  id: swarm\n  body:\n  - !host\n    id: other\n    annotations:\n      authn-jwt/" + jwtService + "/sub: other\n" +
		"- !permit\n  role: !host swarm/other\n  privilege: authenticate\n  resource: !webservice conjur/authn-jwt/" + jwtService + "\n"
	if _, err := s.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(other)); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig("", s.listen(t, false).URL)
	cfg.JWTServiceID = jwtService
	c := newClient(t, cfg)

	mine, err := s.jwt.Sign(map[string]any{"sub": "conjur-plugin"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Adopt(t.Context(), credential.Credential{JWT: redact.String(mine)}); err != nil {
		t.Fatalf("JWT of the pinned host: %+v", err)
	}
	before := c.Status().CredentialFingerprint

	theirs, err := s.jwt.Sign(map[string]any{"sub": "other"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Adopt(t.Context(), credential.Credential{JWT: redact.String(theirs)})
	if CodeOf(err) != errcode.CredentialRejected || !strings.Contains(err.Error(), "host/swarm/other") {
		t.Fatalf("JWT of another host: %+v, want CREDENTIAL_REJECTED naming it", err)
	}
	if got := c.Status().CredentialFingerprint; got != before {
		t.Fatalf("fingerprint %s after the refused handoff, want %s (unchanged)", got, before)
	}
	mustGet(t, c, varID(0))
}
