package conjur

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Close interrupts a handoff that is authenticating, as it does fetches, and
// waits for it: Adopt fails UNAVAILABLE (shutting down) instead of adopting
// a credential, over a connection Close no longer sees, once Close has
// returned.
func TestCloseInterruptsAdopt(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/authenticate") {
			body, _ := io.ReadAll(r.Body) // read, so the server notices when the client hangs up
			r.Body = io.NopCloser(bytes.NewReader(body))
			select {
			case arrived <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := clientConfig("", srv.URL)
	cfg.FetchTimeout = 20 * time.Second // Adopt's own deadline plays no part
	c, err := New(cfg, quietLog(t))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- c.Adopt(t.Context(), credential.Credential{Login: pluginLogin, APIKey: redact.String(s.key)})
	}()
	<-arrived
	c.Close()
	close(release) // an authentication that outlived Close would now succeed
	if err := <-errc; CodeOf(err) != errcode.Unavailable || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("Adopt interrupted by Close: %+v, want UNAVAILABLE (shutting down)", err)
	}
}
