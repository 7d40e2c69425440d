package conjur

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// A Get that joined a fetch already in flight says so even when that fetch
// fails: the driver's audit line then shows why the failure came back at
// once (it was shared), e.g. a TIMEOUT returned right after the fault cleared.
func TestCoalescedFailureSaysCoalesced(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	l := s.listen(t, false)
	c := newClient(t, clientConfig(s.key, l.URL))
	if _, err := c.Get(context.Background(), Ref{ID: varID(1)}); err != nil { // authenticate first
		t.Fatal(err)
	}
	s.Faults().SetLatency(300 * time.Millisecond)
	s.Faults().SetStatus(503, 1)

	const n = 8
	start := make(chan struct{})
	var wg sync.WaitGroup
	var failed, coalesced atomic.Int64
	for range n {
		wg.Go(func() {
			<-start
			v, err := c.Get(context.Background(), Ref{ID: varID(2)})
			if CodeOf(err) == errcode.Unavailable {
				failed.Add(1)
			}
			if v.Coalesced {
				coalesced.Add(1)
			}
			if len(v.Data) != 0 {
				t.Errorf("a failed Get returned %d bytes", len(v.Data))
			}
		})
	}
	close(start)
	wg.Wait()
	if failed.Load() != n {
		t.Fatalf("%d of %d Gets failed UNAVAILABLE", failed.Load(), n)
	}
	if coalesced.Load() == 0 {
		t.Fatal("no failed Get reported Coalesced although they shared one fetch")
	}
}
