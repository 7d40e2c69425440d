package conjur

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

// BenchmarkGet measures Get against conjurdev over loopback HTTP with a warm
// token and the cache off: serial (every Get is its own request) and parallel
// (concurrent Gets coalesce and batch). It reports server requests per Get.
func BenchmarkGet(b *testing.B) {
	s := newDevServer(b, conjurdev.Options{})
	l := s.listen(b, false)
	c := newClient(b, clientConfig(s.key, l.URL))
	if _, err := c.Get(context.Background(), Ref{ID: varID(0)}); err != nil {
		b.Fatal(err)
	}

	b.Run("serial", func(b *testing.B) {
		s.ResetCounts()
		i := 0
		for b.Loop() {
			if _, err := c.Get(context.Background(), Ref{ID: varID(i % nVars)}); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(s.secretRequests())/float64(i), "requests/get")
	})

	b.Run("parallel", func(b *testing.B) {
		s.ResetCounts()
		var n atomic.Int64
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if _, err := c.Get(context.Background(), Ref{ID: varID(int(i) % nVars)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(s.secretRequests())/float64(n.Load()), "requests/get")
	})
}

// BenchmarkNarrowStorm is issue 11's storm of missing variables: 500 Gets of
// 100 legitimate variables and 0, 100 or 400 Gets of missing ones, all at
// once, against conjurdev adding 2ms to every request. It reports the p50
// and p99 of the legitimate Gets, whose batches the missing ids make Conjur
// refuse as a whole.
func BenchmarkNarrowStorm(b *testing.B) {
	s := newDevServer(b, conjurdev.Options{})
	l := s.listen(b, false)
	for _, missing := range []int{0, 100, 400} {
		b.Run(fmt.Sprintf("missing=%d", missing), func(b *testing.B) {
			c := newClient(b, clientConfig(s.key, l.URL))
			if _, err := c.Get(context.Background(), Ref{ID: varID(0)}); err != nil {
				b.Fatal(err)
			}
			s.Faults().SetLatency(2 * time.Millisecond)
			defer s.Faults().SetLatency(0)
			type get struct {
				id    string
				legit bool
			}
			var gets []get
			for i := range 500 {
				gets = append(gets, get{varID(i % nVars), true})
			}
			for i := range missing {
				gets = append(gets, get{fmt.Sprintf("apps/missing-%03d", i), false})
			}
			rng := rand.New(rand.NewPCG(1, uint64(missing)))
			var lat []time.Duration
			var mu sync.Mutex
			s.ResetCounts()
			for b.Loop() {
				rng.Shuffle(len(gets), func(i, j int) { gets[i], gets[j] = gets[j], gets[i] })
				start := make(chan struct{})
				var wg sync.WaitGroup
				for _, g := range gets {
					wg.Go(func() {
						<-start
						t0 := time.Now()
						_, err := c.Get(context.Background(), Ref{ID: g.id})
						d := time.Since(t0)
						if g.legit != (err == nil) {
							b.Errorf("Get(%s): %+v", g.id, err)
						}
						if g.legit {
							mu.Lock()
							lat = append(lat, d)
							mu.Unlock()
						}
					})
				}
				close(start)
				wg.Wait()
			}
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
			b.ReportMetric(pct(0.50), "legit-p50-ms")
			b.ReportMetric(pct(0.99), "legit-p99-ms")
			b.ReportMetric(float64(s.secretRequests())/float64(b.N), "requests/storm")
		})
	}
}
