package conjur

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// A request that fails because Close canceled what it waited for (the
// authentication a Get waits on is canceled before the Get's own fetch
// context, in the order Close's cancellation reaches them) says the client
// is shutting down, not that no appliance answered.
func TestFailureCausedByCloseSaysShuttingDown(t *testing.T) {
	c := newClient(t, clientConfig("key", "http://127.0.0.1:1"))
	c.Close()
	canceled := &url.Error{Op: "Post", URL: "http://127.0.0.1:1/authn", Err: context.Canceled}
	fe := &failoverError{fails: []urlFailure{{"http://127.0.0.1:1", canceled}}}
	// The request's own context is not canceled yet.
	if got := c.sess.finalError(context.Background(), fe, "apps/x"); got.Code != errcode.Unavailable || !strings.Contains(got.Msg, "shutting down") {
		t.Errorf("%+v, want UNAVAILABLE (shutting down)", got)
	}
}
