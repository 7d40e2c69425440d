package conjur

import (
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// When a fresh fetch (NoCache) finds the variable refused or gone, the
// value cached before is not served to the Gets that follow.
func TestCacheDropsAValueConjurNowRefuses(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	cfg := clientConfig(s.key, s.listen(t, false).URL)
	cfg.CacheTTL = time.Minute
	c := newClient(t, cfg)
	mustGet(t, c, varID(0))
	s.Faults().SetStatus(403, 1) // the permission was revoked
	if _, err := c.Get(t.Context(), Ref{ID: varID(0), NoCache: true}); CodeOf(err) != errcode.Forbidden {
		t.Fatalf("fresh fetch: %+v, want FORBIDDEN", err)
	}
	if v, err := c.Get(t.Context(), Ref{ID: varID(0)}); v.Cached || CodeOf(err) != errcode.Forbidden {
		t.Fatalf("after the refusal: %v, %+v; want FORBIDDEN, not the cached value", v, err)
	}
}
