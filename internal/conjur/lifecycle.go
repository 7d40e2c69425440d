package conjur

import (
	"context"
	"sync"
)

// lifecycle owns the goroutines of a Client and the context they run under.
// Every layer starts its background work through it (spawn), and counts work
// it runs on a caller's goroutine (enter), so that Close can cancel all of it
// and wait for it. Its lock is a leaf: nothing else is locked under it.
type lifecycle struct {
	ctx    context.Context // canceled by close; parent of every background call
	cancel context.CancelFunc

	mu      sync.RWMutex // guards closed against workers.Add racing workers.Wait
	closed  bool
	workers sync.WaitGroup
}

func newLifecycle() *lifecycle {
	l := &lifecycle{}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// spawn runs f in a goroutine owned by the lifecycle, unless it is closed.
func (l *lifecycle) spawn(f func()) bool {
	if !l.enter() {
		return false
	}
	go func() {
		defer l.workers.Done()
		f()
	}()
	return true
}

// enter counts work a caller's goroutine does for the Client (an inline
// fetch, a handoff) so that close waits for it, unless the lifecycle is
// closed. The caller calls done when the work ends.
func (l *lifecycle) enter() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false
	}
	l.workers.Add(1)
	return true
}

// done ends work counted by enter.
func (l *lifecycle) done() { l.workers.Done() }

// isClosed reports whether close has begun.
func (l *lifecycle) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// markClosed refuses new work from now on; it reports false if close had
// already begun.
func (l *lifecycle) markClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closed = true
	return true
}

// stop cancels the background context and waits for every worker.
func (l *lifecycle) stop() {
	l.cancel()
	l.workers.Wait()
}
