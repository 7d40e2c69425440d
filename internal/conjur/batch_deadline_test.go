package conjur

import (
	"context"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// A Get ends at its call's deadline (FetchTimeout from the call's start)
// even when the call is not finished: a call that went out in a batch with
// later calls is answered only at the batch's deadline, the latest call's,
// which is up to another FetchTimeout later.
func TestWaitEndsAtItsCallsDeadline(t *testing.T) {
	c := newClient(t, clientConfig("key", "http://127.0.0.1:1"))
	cl := &call{key: refKey{"apps/x", 0}, done: make(chan struct{})}
	cl.ctx, cl.cancel = context.WithDeadline(c.life.ctx, time.Now()) // passed; its batch is still out
	defer cl.cancel()
	errc := make(chan error, 1)
	go func() {
		err := c.batch.wait(context.Background(), cl, false).err
		errc <- err
	}()
	select {
	case err := <-errc:
		if CodeOf(err) != errcode.Timeout {
			t.Errorf("%+v, want TIMEOUT", err)
		}
	case <-time.After(10 * time.Second): // a guard against hanging, not a measure
		close(cl.done)
		<-errc
		t.Fatal("the Get waited past its call's deadline for the call to finish")
	}
}
