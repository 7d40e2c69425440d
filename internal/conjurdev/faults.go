package conjurdev

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Faults are the failure switches of a Server, for tests and demos. The zero
// value injects nothing. Every method is safe for concurrent use.
type Faults struct {
	mu         sync.Mutex
	latency    time.Duration
	status     int
	statusRate float64
	dropRate   float64
	readOnly   atomic.Bool
}

// SetLatency adds d before every response (0 clears it). A request whose
// client goes away while waiting is abandoned.
func (f *Faults) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.latency = max(d, 0)
	f.mu.Unlock()
}

// SetStatus answers code with an empty body for the given fraction (0..1) of
// requests. A code or rate of 0 clears it.
func (f *Faults) SetStatus(code int, rate float64) {
	f.mu.Lock()
	if code == 0 || rate <= 0 {
		f.status, f.statusRate = 0, 0
	} else {
		f.status, f.statusRate = code, min(rate, 1)
	}
	f.mu.Unlock()
}

// SetDrop closes the connection without an answer for the given fraction
// (0..1) of requests. 0 clears it.
func (f *Faults) SetDrop(rate float64) {
	f.mu.Lock()
	f.dropRate = min(max(rate, 0), 1)
	f.mu.Unlock()
}

// SetReadOnly switches follower mode: writes (policy loads, secret sets,
// API key rotation, authenticator changes) answer 405, reads work.
func (f *Faults) SetReadOnly(on bool) { f.readOnly.Store(on) }

// Reset clears every fault.
func (f *Faults) Reset() {
	f.mu.Lock()
	f.latency, f.status, f.statusRate, f.dropRate = 0, 0, 0, 0
	f.mu.Unlock()
	f.readOnly.Store(false)
}

type faultPlan struct {
	latency time.Duration
	status  int
	drop    bool
}

func (f *Faults) plan() faultPlan {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := faultPlan{latency: f.latency}
	if f.dropRate > 0 && (f.dropRate >= 1 || rand.Float64() < f.dropRate) {
		p.drop = true
		return p
	}
	if f.status != 0 && (f.statusRate >= 1 || rand.Float64() < f.statusRate) {
		p.status = f.status
	}
	return p
}

// apply runs the planned faults for one request. It reports true when the
// request was answered (or dropped) and the handler must not run.
func (f *Faults) apply(w http.ResponseWriter, r *http.Request, write bool) bool {
	p := f.plan()
	if p.latency > 0 && !sleepCtx(r.Context(), p.latency) {
		dropConnection(w)
		return true
	}
	if p.drop {
		dropConnection(w)
		return true
	}
	if p.status != 0 {
		w.WriteHeader(p.status)
		return true
	}
	if write && f.readOnly.Load() {
		// Conjur's own answer on a node that refuses writes.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"error":{"code":405,"message":"Write operations are not allowed"}}`))
		return true
	}
	return false
}

// sleepCtx waits d or until ctx is done; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// dropConnection closes the client's connection without writing an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 or a wrapped writer: abort the handler, which resets the stream.
	panic(http.ErrAbortHandler)
}
