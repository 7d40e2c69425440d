package driver

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// BenchmarkBundleVsSingles compares, through the real socket, client and
// conjurdev (warm token, cache off), one GetSecret of the demo's 5-member
// dotenv bundle with the 5 GetSecrets of its variables one after another,
// as a task with 5 secrets asks for them. Each op is one task's worth:
// p50-µs is the median op, conjur-req/op the Conjur requests per op. With
// latency=2ms the dev server waits 2 ms before every answer, a Conjur
// round trip over a network.
func BenchmarkBundleVsSingles(b *testing.B) {
	bundle := mustJSON(b, bundleReq("demo_env", "demo-env"))
	var singles [][]byte
	for _, id := range []string{"apps/demo/db-host", "apps/demo/db-user", "apps/demo/db-password", "apps/demo/api-token", "apps/demo/aws-credentials"} {
		singles = append(singles, mustJSON(b, byLabel("s", id)))
	}
	for _, latency := range []time.Duration{0, 2 * time.Millisecond} {
		for _, tc := range []struct {
			name   string
			bodies [][]byte
		}{
			{"bundle-5", [][]byte{bundle}},
			{"singles-5", singles},
		} {
			b.Run(fmt.Sprintf("latency=%s/%s", latency, tc.name), func(b *testing.B) {
				cj := newBenchConjur(b)
				c := benchPlugin(b, cj)
				get := func(body []byte) {
					res, err := c.get(body)
					if err != nil || res.Err != "" || len(res.Value) == 0 {
						b.Fatalf("GetSecret: err=%v answer=%v", err, res)
					}
				}
				for _, body := range tc.bodies { // authenticate outside the timer
					get(body)
				}
				cj.dev.Faults().SetLatency(latency)
				cj.dev.ResetCounts()
				var took []time.Duration
				for b.Loop() {
					start := time.Now()
					for _, body := range tc.bodies {
						get(body)
					}
					took = append(took, time.Since(start))
				}
				var requests int64
				for _, n := range cj.dev.Counts() {
					requests += n
				}
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(requests)/float64(len(took)), "conjur-req/op")
			})
		}
	}
}

func mustJSON(b *testing.B, req pluginapi.Request) []byte {
	b.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	return body
}
