package conjur

import (
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

// A fetch with a warm token sends it as it is: the conjurapi client a request
// gets already holds the parsed token, so conjurapi does not parse it again.
func TestWarmTokenIsNotParsedPerRequest(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	mustGet(t, c, varID(0))
	ep := c.eps[0]
	ep.mu.Lock()
	tok := ep.tok
	ep.mu.Unlock()
	if tok == nil || tok.api == nil {
		t.Fatalf("token %v: no parsed conjurapi client kept with it", tok)
	}
	if api := c.bind(t.Context(), ep.api, tok); api.NeedsTokenRefresh() {
		t.Error("a request's client would parse the token again")
	}
	mustGet(t, c, varID(1))
	if s.Count(conjurdev.EpAuthn) != 1 {
		t.Errorf("%d authentications, want 1", s.Count(conjurdev.EpAuthn))
	}
}
