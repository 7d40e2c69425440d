package conjur

import (
	"context"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// A fetch with a warm token sends it as it is: the conjurapi client a request
// gets already holds the parsed token, so conjurapi does not parse it again.
func TestWarmTokenIsNotParsedPerRequest(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	mustGet(t, c, varID(0))
	ep := c.sess.eps[0]
	ep.mu.Lock()
	tok := ep.tok
	ep.mu.Unlock()
	if tok == nil || tok.api == nil {
		t.Fatalf("token %v: no parsed conjurapi client kept with it", tok)
	}
	if api := c.sess.bind(t.Context(), ep.api, tok); api.needsTokenRefresh() {
		t.Error("a request's client would parse the token again")
	}
	mustGet(t, c, varID(1))
	if s.Count(conjurdev.EpAuthn) != 1 {
		t.Errorf("%d authentications, want 1", s.Count(conjurdev.EpAuthn))
	}
}

// inflightCall returns the call in flight for id, or nil.
func inflightCall(c *Client, id string) *call {
	c.batch.mu.Lock()
	defer c.batch.mu.Unlock()
	return c.batch.inflight[refKey{id, 0}]
}

// A Get that finds the client idle sends its request itself (no goroutine);
// when its caller gives up and no other Get shares the fetch, the fetch is
// abandoned: the caller gets CANCELED and a later Get starts afresh.
func TestIdleGetRunsInlineAndIsAbandonedWhenCanceled(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	mustGet(t, c, varID(0)) // warm token
	s.Faults().SetLatency(time.Second)

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, Ref{ID: varID(1)})
		errc <- err
	}()
	waitFor(t, func() bool { return inflightCall(c, varID(1)) != nil }, "the fetch in flight")
	c.batch.mu.Lock()
	active, pending := c.batch.active, len(c.batch.pending)
	c.batch.mu.Unlock()
	if active != 1 || pending != 0 {
		t.Errorf("%d batches active and %d pending, want the inline fetch holding 1 slot", active, pending)
	}
	cancel()
	if err := <-errc; CodeOf(err) != errcode.Canceled {
		t.Fatalf("canceled caller: %+v, want CANCELED", err)
	}
	if inflightCall(c, varID(1)) != nil {
		t.Error("the abandoned fetch is still there for others to join")
	}
	s.Faults().SetLatency(0)
	mustGet(t, c, varID(1))
}

// When others joined the fetch an idle Get started, the starter giving up
// does not fail them: they get the value from the one request.
func TestInlineFetchSurvivesItsCallerForThoseWhoJoined(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	mustGet(t, c, varID(0)) // warm token
	s.ResetCounts()
	s.Faults().SetLatency(200 * time.Millisecond)

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, Ref{ID: varID(2)})
		errc <- err
	}()
	waitFor(t, func() bool { return inflightCall(c, varID(2)) != nil }, "the fetch in flight")
	type answer struct {
		v   Value
		err error
	}
	joined := make(chan answer, 1)
	go func() {
		v, err := c.Get(t.Context(), Ref{ID: varID(2)})
		joined <- answer{v, err}
	}()
	waitFor(t, func() bool {
		c.batch.mu.Lock()
		defer c.batch.mu.Unlock()
		cl := c.batch.inflight[refKey{varID(2), 0}]
		return cl != nil && cl.joined == 1
	}, "a second Get joined")
	cancel()
	a := <-joined
	if a.err != nil || string(a.v.Data) != varValue(2) || !a.v.Coalesced {
		t.Errorf("joined Get: %v, %+v; want the value, coalesced", a.v, a.err)
	}
	if err := <-errc; CodeOf(err) != errcode.Canceled {
		t.Errorf("canceled starter: %+v, want CANCELED", err)
	}
	if n := s.secretRequests(); n != 1 {
		t.Errorf("%d secret requests, want 1", n)
	}
}

// Gets with no deadline of their own are still bounded by FetchTimeout,
// whether they send the request themselves, gather for a batch or join a
// fetch in flight.
func TestGetsWithoutDeadlineTimeOut(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	cfg := clientConfig(s.key, s.listen(t, false).URL)
	cfg.FetchTimeout = 300 * time.Millisecond
	c := newClient(t, cfg)
	mustGet(t, c, varID(0)) // warm token
	s.Faults().SetLatency(2 * time.Second)

	errs := make(chan error, 12)
	for i := range 12 {
		go func() {
			_, err := c.Get(context.Background(), Ref{ID: varID(1 + i%4)})
			errs <- err
		}()
	}
	for range 12 {
		if err := <-errs; CodeOf(err) != errcode.Timeout {
			t.Errorf("err = %+v, want TIMEOUT", err)
		}
	}
}
