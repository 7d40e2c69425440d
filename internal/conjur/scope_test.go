package conjur

import (
	"errors"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// TestHandedOverCredentialStaysWithItsURLs: a plugin lists a staging Conjur
// first and production second; the credential handed over names production
// only (its appliance_url). It is sent to production alone: staging sees
// no authentication and no request, not at the handoff, not on a fetch,
// not when production fails and a fetch would fail over, not after a
// re-authentication.
func TestHandedOverCredentialStaysWithItsURLs(t *testing.T) {
	staging := newDevServer(t, conjurdev.Options{})
	prod := newDevServer(t, conjurdev.Options{})
	stagingURL, prodURL := staging.listen(t, false).URL, prod.listen(t, false).URL
	c := newClient(t, clientConfig("", stagingURL, prodURL))
	ctx := t.Context()

	cred := credential.Credential{Login: pluginLogin, APIKey: redact.String(prod.key), ApplianceURLs: []string{prodURL + "/"}}
	if err := c.Adopt(ctx, cred); err != nil {
		t.Fatalf("Adopt: %+v", err)
	}
	mustGet(t, c, varID(0))
	prod.ExpireTokens() // a re-authentication goes to production too
	mustGet(t, c, varID(1))

	prod.Faults().SetStatus(503, 1)
	if _, err := c.Get(ctx, Ref{ID: varID(2)}); CodeOf(err) != errcode.Unavailable {
		t.Errorf("Get with production down = %+v, want UNAVAILABLE (staging is not the credential's)", err)
	}
	prod.Faults().Reset()

	for _, u := range c.Status().URLs {
		if u.URL == stagingURL && u.Failures != 0 {
			t.Errorf("the staging URL was tried and set aside (%d failures, %q): a URL the credential does not name is not a candidate", u.Failures, u.LastError)
		}
	}
	if n := staging.Count(conjurdev.EpAuthn); n != 0 {
		t.Errorf("the staging Conjur received %d authentications with production's credential; want 0", n)
	}
	if n := staging.secretRequests(); n != 0 {
		t.Errorf("the staging Conjur received %d secret requests; want 0", n)
	}
	if n := prod.Count(conjurdev.EpAuthn); n != 2 {
		t.Errorf("production received %d authentications, want 2 (handoff, after the tokens expired)", n)
	}
}

// TestHandedOverCredentialForNoneOfThePluginsURLsIsRefused: a credential
// that names none of the plugin's URLs is refused before anything is sent.
func TestHandedOverCredentialForNoneOfThePluginsURLsIsRefused(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig("", s.listen(t, false).URL))
	err := c.Adopt(t.Context(), credential.Credential{Login: pluginLogin, APIKey: redact.String(s.key), ApplianceURLs: []string{"https://conjur.elsewhere.example"}})
	if CodeOf(err) != errcode.CredentialRejected || !strings.Contains(err.Error(), "conjur.elsewhere.example") {
		t.Fatalf("Adopt = %+v, want CREDENTIAL_REJECTED naming the credential's URL", err)
	}
	if n := s.Count(conjurdev.EpAuthn); n != 0 {
		t.Errorf("%d authentications; want none", n)
	}
}

// TestAuthenticateRefusesAURLTheCredentialDoesNotName: the one place a
// credential leaves, authenticate, refuses a URL the credential does not
// name, whatever its caller chose (a fetch that picked its URLs before a
// handoff changed the credential), and nothing reaches that URL.
func TestAuthenticateRefusesAURLTheCredentialDoesNotName(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig("", s.listen(t, false).URL))
	ep := c.sess.eps[0]
	_, err := c.sess.authenticate(t.Context(), ep, credential.Credential{Login: pluginLogin, APIKey: redact.String(s.key), ApplianceURLs: []string{"https://conjur.prod.example"}})
	var se *scopeError
	if !errors.As(err, &se) || isAnswer(err) {
		t.Fatalf("authenticate = %v, want a scopeError that failover passes over", err)
	}
	if n := s.Count(conjurdev.EpAuthn); n != 0 {
		t.Fatalf("%d authentications reached a URL the credential does not name", n)
	}
}
