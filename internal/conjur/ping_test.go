package conjur

import (
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Ping asks Conjur, as the plugin's identity, whether it answers: refused
// without a credential, answered (and the contact recorded) with one,
// UNAVAILABLE once Conjur is down.
func TestPingAsksConjurAsThePlugin(t *testing.T) {
	srv := newDevServer(t, conjurdev.Options{})
	l := srv.listen(t, false)

	if err := newClient(t, clientConfig("", l.URL)).Ping(t.Context()); CodeOf(err) != errcode.NoCredential {
		t.Fatalf("Ping without a credential: %+v, want NO_CREDENTIAL", err)
	}

	c := newClient(t, clientConfig(srv.key, l.URL))
	before := srv.Count(conjurdev.EpWhoami)
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %+v", err)
	}
	if srv.Count(conjurdev.EpWhoami) != before+1 {
		t.Fatal("Ping made no whoami request")
	}
	if st := c.Status(); st.LastContact.IsZero() || st.LastURL != l.URL {
		t.Fatalf("status after Ping: %+v; want the contact recorded", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(t.Context()); CodeOf(err) != errcode.Unavailable {
		t.Fatalf("Ping with Conjur down: %+v, want UNAVAILABLE", err)
	}
}
