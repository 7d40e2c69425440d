package conjur

import (
	"context"
	"sync/atomic"
	"testing"

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
