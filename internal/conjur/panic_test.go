package conjur

import (
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

// A fetch that panics (here in the transport, on the caller's goroutine of
// an inline fetch, which net/http's server would recover) frees its batch
// slot and its call: the next Get of the variable starts afresh instead of
// joining a call that never ends.
func TestPanickingFetchFreesItsSlotAndCall(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	mustGet(t, c, varID(0)) // warm token; the client is idle again
	var boom atomic.Bool
	boom.Store(true)
	c.sess.transport.Load().Proxy = func(*http.Request) (*url.URL, error) {
		if boom.CompareAndSwap(true, false) {
			panic("injected transport panic")
		}
		return nil, nil
	}
	panicked := func() (p any) {
		defer func() { p = recover() }()
		_, _ = c.Get(t.Context(), Ref{ID: varID(1)})
		return nil
	}()
	if panicked == nil {
		t.Fatal("the injected panic did not reach the caller")
	}
	c.batch.mu.Lock()
	active := c.batch.active
	c.batch.mu.Unlock()
	if active != 0 {
		t.Fatalf("%d batch slots still held after the panic, want 0", active)
	}
	if inflightCall(c, varID(1)) != nil {
		t.Fatal("the panicked call is still in flight for others to join")
	}
	if v := mustGet(t, c, varID(1)); string(v.Data) != varValue(1) {
		t.Errorf("after the panic: %q, want %q", v.Data, varValue(1))
	}
}
