package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden.md from the current renderDoc")

// renderFixtures are reports that between them take every branch of
// renderDoc and renderLimits.
func renderFixtures() map[string]report {
	ms, us := time.Millisecond, time.Microsecond
	ours := stormResult{name: "ours", gets: 10000, wall: 400 * ms, lat: percentiles{p50: 21 * ms, p90: 30 * ms, p99: 45 * ms, max: 60 * ms},
		requests: 104, byEndpoint: "batch 96, secret 8", doNotReuse: 10000, rssKiB: 40 << 10, cpu: 400 * ms, clientCPU: 300 * ms, conjurCPU: 20 * ms, inFlight: 512}
	naive := stormResult{name: "naive", gets: 10000, wall: 4400 * ms, lat: percentiles{p50: 200 * ms, p90: 300 * ms, p99: 450 * ms, max: 700 * ms},
		requests: 20000, byEndpoint: "authn 10000, secret 10000", rssKiB: 70 << 10, cpu: 1500 * ms, clientCPU: 500 * ms, conjurCPU: 700 * ms, inFlight: 512}
	floor := stormResult{name: "floor", gets: 10000, wall: 250 * ms, lat: percentiles{p50: 12 * ms, p99: 30 * ms}, inFlight: 512, cpu: 200 * ms, clientCPU: 280 * ms, rssKiB: 31 << 10}
	cached := stormResult{name: "ours, reuse: true + cache 30s", gets: 10000, wall: 300 * ms, requests: 2, inFlight: 512, cpu: 250 * ms, rssKiB: 41 << 10}
	boundedOurs := stormResult{name: "ours, Conjur 8 at a time", gets: 2000, wall: 250 * ms, lat: percentiles{p50: 2200 * us, p99: 5 * ms}, requests: 610, byEndpoint: "secret 600, batch 10", inFlight: 20}
	boundedNaive := stormResult{name: "naive, Conjur 8 at a time", gets: 2000, wall: 3100 * ms, lat: percentiles{p50: 30 * ms, p99: 40 * ms}, requests: 4000, byEndpoint: "authn 2000, secret 2000", inFlight: 20}
	nodeOurs := stormResult{name: "ours", gets: 10000, wall: 1100 * ms, lat: percentiles{p50: 2300 * us, p99: 4 * ms}, requests: 2600, byEndpoint: "batch 600, secret 2000", inFlight: 20, cpu: 900 * ms, clientCPU: 400 * ms, conjurCPU: 300 * ms}
	nodeNaive := stormResult{name: "naive", gets: 10000, wall: 2300 * ms, lat: percentiles{p50: 4500 * us, p99: 9 * ms}, requests: 20000, byEndpoint: "authn 10000, secret 10000", inFlight: 20, cpu: 1800 * ms, clientCPU: 600 * ms, conjurCPU: 1200 * ms}
	nodeFloor := stormResult{name: "floor", gets: 10000, wall: 300 * ms, lat: percentiles{p50: 500 * us, p99: 2 * ms}, inFlight: 20, cpu: 200 * ms, clientCPU: 300 * ms}
	nodePre := stormResult{name: "prefetch", gets: 10000, wall: 400 * ms, lat: percentiles{p50: 600 * us, p99: 3 * ms}, requests: 1200, byEndpoint: "batch 1100, secret 100", inFlight: 20, cpu: 500 * ms, clientCPU: 350 * ms, conjurCPU: 100 * ms}
	nodeIdent := stormResult{name: "per-identity", gets: 10000, wall: 1300 * ms, lat: percentiles{p50: 2500 * us, p99: 5 * ms}, requests: 3100, byEndpoint: "authn-jwt 20, batch 900, secret 2180", inFlight: 20, cpu: 1000 * ms, clientCPU: 400 * ms, conjurCPU: 350 * ms}
	perNode := perNodeResult{ours: nodeOurs, naive: nodeNaive, floor: nodeFloor, prefetch: nodePre, identity: nodeIdent, identityRuns: []stormResult{nodeIdent, nodeIdent, nodeIdent},
		oursRuns: []stormResult{nodeOurs, nodeOurs, nodeOurs}, naiveRuns: []stormResult{nodeNaive, nodeNaive, nodeNaive}, floorRuns: []stormResult{nodeFloor, nodeFloor, nodeFloor},
		prefetchRuns: []stormResult{nodePre, nodePre, nodePre}}
	bounded := &boundedResult{ours: boundedOurs, naive: boundedNaive, tasks: 400}
	scale := &scaleResult{nodes: 400,
		ours:  stormResult{name: "ours (default settings), at scale", gets: 50000, wall: 3500 * ms, lat: percentiles{p50: 20 * ms, p99: 60 * ms}, requests: 1500, byEndpoint: "batch 1400, secret 100", cpu: 3600 * ms, rssKiB: 48 << 10},
		naive: stormResult{name: "naive, at scale", gets: 50000, wall: 10400 * ms, lat: percentiles{p50: 80 * ms, p99: 150 * ms}, requests: 100000, cpu: 9 * time.Second, rssKiB: 70 << 10},
		floor: stormResult{name: "floor, at scale", gets: 50000, wall: 1700 * ms, lat: percentiles{p50: 12 * ms, p99: 40 * ms}, cpu: 1500 * ms, rssKiB: 31 << 10}}
	oneP := stormResult{name: onePName, gets: 10000, wall: 450 * ms, requests: 90, inFlight: 512, cpu: 380 * ms}
	onePNodes := stormResult{name: onePName + ", per-node model", gets: 10000, wall: 1250 * ms, requests: 2500, inFlight: 20}
	lat := latencies{samples: 2000,
		direct: percentiles{p50: 150 * us, p90: 200 * us, p99: 400 * us}, client: percentiles{p50: 170 * us, p90: 220 * us, p99: 420 * us},
		socket: percentiles{p50: 90 * us, p90: 120 * us, p99: 300 * us}, plugin: percentiles{p50: 360 * us, p90: 450 * us, p99: 900 * us},
		pluginCPU: 250 * us, pluginSwitches: 12.5}
	latOneP := lat
	latOneP.hasOneP, latOneP.oneP, latOneP.onePCPU, latOneP.onePSwitches = true, percentiles{p50: 300 * us, p90: 380 * us, p99: 700 * us}, 175*us, 6.5
	env := machine{CPUs: 2, CPUModel: "test CPU", GoVersion: "go1.26", Kernel: "6.1.0", Date: time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC), LoadBefore: "1.00 1.50 2.00", LoadAfter: "2.00 2.50 3.00"}
	opts := options{tasks: 2000, secrets: 5, variables: 200, latency: 2 * ms, concurrency: 512, nodes: 20, rounds: 3, serverSlots: 8, samples: 2000,
		authnCost: 8 * ms, boundedTasks: 400}
	res := result{NaiveConjurRequests: 20000, OursConjurRequests: 104, NaiveWallMS: 4400, OursWallMS: 400, OursP99MS: 45,
		DirectFetchP50US: 150, PluginGetP50US: 360, PluginPeakRSSMiB: 40,
		PernodeNodes: 20, PernodeOursWallMS: 1100, PernodeNaiveWallMS: 2300, PernodeFloorWallMS: 300, PernodeLimitMS: 1000, PernodeOursP50MS: 2.3,
		PernodeOursConjurRequests: 2600, PernodeNaiveConjurRequests: 20000, PernodePrefetchWallMS: 400, PernodePrefetchRequests: 1200, BoundedOursWallMS: 250, BoundedNaiveWallMS: 3100}
	settings := []string{"CONJUR_APPLIANCE_URL=http://127.0.0.1:4242", "CONJUR_ACCOUNT=dev", "CONJUR_SWARM_SOCKET=/tmp/w/plugin.sock",
		"CONJUR_SWARM_MAPPING_FILE=/tmp/w/mapping.yml", "CONJUR_SWARM_CREDENTIAL_FILE=/tmp/w/credential"}
	bench := sampleBench + "pkg: github.com/cyberark/conjur-swarm/internal/driver\nBenchmarkGetSecretSocket-2 	 5000	 240000 ns/op	 20000 B/op	 200 allocs/op\n"

	full := report{opts: opts, env: env, res: res, ours: ours, naive: naive, lat: latOneP,
		oursRuns: []stormResult{ours, ours, ours}, naiveRuns: []stormResult{naive, naive, naive},
		extras:  []stormResult{floor, cached, oneP, onePNodes},
		goBench: bench, plugin: settings, perNode: perNode, bounded: bounded, scale: scale}
	plain := full
	plain.opts.reuse, plain.opts.serverSlots = true, 0
	plain.lat = lat
	plain.extras = []stormResult{cached}
	plain.bounded, plain.scale = nil, nil
	minimal := report{opts: opts, env: env, res: res, ours: ours, naive: naive, lat: lat,
		oursRuns: []stormResult{ours}, naiveRuns: []stormResult{naive}, plugin: settings,
		perNode: perNodeResult{ours: nodeOurs, naive: nodeNaive, floor: nodeFloor, prefetch: nodePre,
			oursRuns: []stormResult{nodeOurs}, naiveRuns: []stormResult{nodeNaive}, floorRuns: []stormResult{nodeFloor}, prefetchRuns: []stormResult{nodePre}}}
	return map[string]report{"full": full, "no-floor-no-onep": plain, "minimal": minimal}
}

// TestRenderDocGolden: renderDoc writes, byte for byte, the documents
// recorded in testdata for fixed figures.
func TestRenderDocGolden(t *testing.T) {
	for name, r := range renderFixtures() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name+".golden.md")
			got := renderDoc(r)
			if *updateGolden {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("renderDoc differs from %s (rerun with -update only when the change is meant):\n%s", path, firstDiff(string(want), got))
			}
		})
	}
}

// firstDiff shows the first line where want and got differ.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\nwant: %s\ngot:  %s", i+1, w, g)
		}
	}
	return "(same lines, different ends)"
}
