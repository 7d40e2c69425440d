package conjur

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// An authentication in flight with a credential that a handoff then
// replaces does not fail the Gets waiting for it: once Adopt has made the
// new credential current, they use its token rather than the old
// credential's refusal.
func TestAdoptDuringAuthenticationWithOldCredential(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	arrived, release := make(chan struct{}), make(chan struct{})
	released := false
	var once atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/authenticate") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(strings.NewReader(string(body)))
			if string(body) == "old-key" && once.CompareAndSwap(false, true) {
				close(arrived)
				<-release
			}
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	c := newClient(t, clientConfig("old-key", srv.URL))

	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(t.Context(), Ref{ID: varID(0)})
		errc <- err
	}()
	<-arrived // the Get waits for an authentication with the old key
	if err := c.Adopt(t.Context(), credential.Credential{Login: pluginLogin, APIKey: redact.String(s.key)}); err != nil {
		t.Fatalf("Adopt: %+v", err)
	}
	released = true
	close(release) // the old key is refused now, after the handoff
	if err := <-errc; err != nil {
		t.Errorf("Get waiting across the handoff: %+v, want the value", err)
	}
	mustGet(t, c, varID(1))
}
