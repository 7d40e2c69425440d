package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

const sampleBench = `goos: linux
goarch: amd64
pkg: github.com/cyberark/conjur-swarm/internal/driver
cpu: Intel(R) Xeon(R) Processor
BenchmarkDecodeRequest-2     	   54126	     22926 ns/op	  24.73 MB/s	    5352 B/op	      41 allocs/op
BenchmarkDirectFetch-2       	   19875	     53095 ns/op	   11902 B/op	     129 allocs/op
PASS
ok  	github.com/cyberark/conjur-swarm/internal/driver	3.976s
pkg: github.com/cyberark/conjur-swarm/internal/conjur
BenchmarkGet/serial-2         	   19136	     65323 ns/op	         1.000 requests/get	   17911 B/op	     231 allocs/op
--- FAIL: BenchmarkBroken
BenchmarkOdd-2 1 2 ns/op extra
`

func TestParseGoBench(t *testing.T) {
	got := parseGoBench(sampleBench)
	type row struct{ Pkg, Name, NS, B, Allocs, Others string }
	var rows []row
	for _, b := range got {
		rows = append(rows, row{b.pkg, b.name, b.metric("ns/op"), b.metric("B/op"), b.metric("allocs/op"), b.others()})
	}
	want := []row{
		{"internal/driver", "BenchmarkDecodeRequest-2", "22926", "5352", "41", "24.73 MB/s"},
		{"internal/driver", "BenchmarkDirectFetch-2", "53095", "11902", "129", ""},
		{"internal/conjur", "BenchmarkGet/serial-2", "65323", "17911", "231", "1.000 requests/get"},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("parseGoBench (-want +got):\n%s", diff)
	}
	sock, direct, ok := inProcess(got)
	if ok || sock != 0 || direct != 53095 {
		t.Errorf("inProcess without the socket benchmark = %v, %v, %v; want 0, 53095, false", sock, direct, ok)
	}
}

func FuzzParseGoBench(f *testing.F) {
	f.Add(sampleBench)
	f.Add("BenchmarkX 1 2 ns/op\npkg: \n")
	f.Fuzz(func(t *testing.T, out string) {
		for _, b := range parseGoBench(out) {
			if !strings.HasPrefix(b.name, "Benchmark") {
				t.Fatalf("parsed a line that is not a benchmark: %q", b.name)
			}
			_ = b.others()
		}
	})
}

func TestPercentilesOf(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := percentilesOf(ds)
	want := percentiles{p50: 50 * time.Millisecond, p90: 90 * time.Millisecond, p99: 99 * time.Millisecond, max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("percentilesOf(1..100 ms) = %+v, want %+v", got, want)
	}
	if got := percentilesOf([]time.Duration{7}); got != (percentiles{7, 7, 7, 7}) {
		t.Errorf("percentilesOf(one) = %+v", got)
	}
	if got := percentilesOf(nil); got != (percentiles{}) {
		t.Errorf("percentilesOf(nil) = %+v", got)
	}
}

// TestFixtures checks that the mapping files the plugin gets are valid and
// resolve storm requests as the report says, and that the storm's Conjur
// policy grants the plugin host every variable.
func TestFixtures(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		p, err := policy.Parse("mapping.yml", []byte(mappingFile(reuse)))
		if err != nil {
			t.Fatalf("mappingFile(%t): %v", reuse, err)
		}
		d := p.Resolve(policy.Request{SecretName: "storm_v007", SecretLabels: map[string]string{"conjur.variable": variableID(7)}})
		if !d.Allow || d.Variable != variableID(7) || d.DoNotReuse == reuse {
			t.Errorf("mappingFile(%t) resolves to %+v; want allow %s with DoNotReuse=%t", reuse, d, variableID(7), !reuse)
		}
	}

	dev, err := conjurdev.New(conjurdev.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := dev.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(stormPolicy(3)))
	if err != nil {
		t.Fatalf("stormPolicy: %v", err)
	}
	if res.CreatedRoles[dev.Account()+":"+pluginRole] == "" {
		t.Fatalf("stormPolicy created no %s: %v", pluginRole, res.CreatedRoles)
	}
	for i := range 3 {
		if err := dev.SetSecret(variableID(i), []byte(variableValue(i))); err != nil {
			t.Errorf("variable %s: %v", variableID(i), err)
		}
	}
}

func TestLoadSpreadsVariables(t *testing.T) {
	l := newLoad(options{tasks: 40, secrets: 5, variables: 20})
	if len(l.bodies) != 200 || len(l.want) != 200 {
		t.Fatalf("got %d bodies and %d values, want 200", len(l.bodies), len(l.want))
	}
	seen := map[string]int{}
	for _, v := range l.want {
		seen[v]++
	}
	if len(seen) != 20 {
		t.Errorf("the load asks for %d distinct variables, want 20", len(seen))
	}
	for v, n := range seen {
		if n != 10 {
			t.Errorf("variable value %s asked for %d times, want 10", v, n)
		}
	}
}

func TestProcReaders(t *testing.T) {
	pid := os.Getpid()
	rss, err := peakRSSKiB(pid)
	if err != nil || rss <= 0 {
		t.Errorf("peakRSSKiB(self) = %d, %v; want a positive size", rss, err)
	}
	if _, err := processCPU(pid); err != nil {
		t.Errorf("processCPU(self): %v", err)
	}
	if n, err := contextSwitches(pid); err != nil || n <= 0 {
		t.Errorf("contextSwitches(self) = %d, %v; want a positive count", n, err)
	}
	if _, err := peakRSSKiB(-1); err == nil {
		t.Error("peakRSSKiB(-1) succeeded; want an error")
	}
}

func TestEnvList(t *testing.T) {
	var e envList
	if err := e.Set("GOGC=200"); err != nil {
		t.Errorf("Set(GOGC=200): %v", err)
	}
	for _, bad := range []string{"GOGC", "=1"} {
		if err := e.Set(bad); err == nil {
			t.Errorf("Set(%q) succeeded; want an error", bad)
		}
	}
	if diff := cmp.Diff(envList{"GOGC=200"}, e); diff != "" {
		t.Errorf("envList (-want +got):\n%s", diff)
	}
}

func TestRenderDocVerdicts(t *testing.T) {
	ms := time.Millisecond
	ours := stormResult{name: "ours", gets: 10000, wall: 400 * ms, requests: 100, inFlight: 512, cpu: 400 * ms, clientCPU: 300 * ms, rssKiB: 40 << 10}
	naive := stormResult{name: "naive", gets: 10000, wall: 4400 * ms, requests: 20000, inFlight: 512, cpu: 1500 * ms, clientCPU: 500 * ms, conjurCPU: 700 * ms, rssKiB: 70 << 10}
	floor := stormResult{name: "floor", gets: 10000, wall: 250 * ms, inFlight: 512, cpu: 200 * ms, clientCPU: 280 * ms, rssKiB: 31 << 10}
	r := report{
		opts:  options{tasks: 2000, secrets: 5, variables: 200, latency: 2 * ms, concurrency: 512, nodes: 20, rounds: 1, serverSlots: 8},
		env:   machine{CPUs: 2, CPUModel: "test CPU", GoVersion: "go1.26", LoadBefore: "1 1 1", LoadAfter: "2 2 2"},
		ours:  ours,
		naive: naive,
		res: result{NaiveConjurRequests: 20000, OursConjurRequests: 100, NaiveWallMS: 4400, OursWallMS: 400,
			DirectFetchP50US: 50, PluginGetP50US: 300, PluginPeakRSSMiB: 40},
		oursRuns: []stormResult{ours}, naiveRuns: []stormResult{naive}, extras: []stormResult{floor},
		goBench: sampleBench,
		plugin:  []string{"CONJUR_APPLIANCE_URL=http://127.0.0.1:4242", "CONJUR_SWARM_SOCKET=/tmp/w/plugin.sock"},
	}
	doc := renderDoc(r)
	for _, want := range []string{
		"| Conjur requests at least 20× below naive | 200.0× | met |",
		"| wall time at least 10× below naive | 11.0× | met |",
		"| plugin peak RSS at most 45 MiB | 40.0 MiB | met |",
		"(= 260 µs) | 300 µs | **missed** |",
		"CONJUR_APPLIANCE_URL=http://127.0.0.1:<port>",
		"CONJUR_SWARM_SOCKET=<work dir>/plugin.sock",
		"| internal/driver | BenchmarkDecodeRequest-2 | 22926 | 5352 | 41 | 24.73 MB/s |",
		"no driver can be more than 17.6× faster",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the document lacks %q", want)
		}
	}
	if strings.Contains(doc, "/tmp/w") {
		t.Error("the document shows the work directory's path")
	}
}

// With the GOMAXPROCS=1 plugin measured, the document shows its one-call row,
// its CPU and switches, and its storm next to the default one.
func TestRenderDocOneP(t *testing.T) {
	ms := time.Millisecond
	ours := stormResult{name: "ours", gets: 10000, wall: 400 * ms, requests: 100, inFlight: 512, cpu: 400 * ms}
	oneP := stormResult{name: onePName, gets: 10000, wall: 450 * ms, requests: 90, inFlight: 512, cpu: 380 * ms}
	r := report{
		opts: options{tasks: 2000, secrets: 5, variables: 200, latency: 2 * ms, concurrency: 512, nodes: 20, rounds: 1},
		env:  machine{CPUs: 2},
		ours: ours, naive: stormResult{name: "naive", gets: 10000, wall: 1200 * ms, requests: 20000},
		res: result{NaiveWallMS: 1200, OursWallMS: 400, DirectFetchP50US: 100, PluginGetP50US: 360},
		lat: latencies{samples: 100, plugin: percentiles{p50: 360 * time.Microsecond}, pluginCPU: 250 * time.Microsecond, pluginSwitches: 12.5,
			hasOneP: true, oneP: percentiles{p50: 300 * time.Microsecond}, onePCPU: 175 * time.Microsecond, onePSwitches: 6.5},
		oursRuns: []stormResult{ours}, extras: []stormResult{oneP},
	}
	doc := renderDoc(r)
	for _, want := range []string{
		"| GetSecret through the same plugin run with `GOMAXPROCS=1` (an experiment, not the default) | 300 µs |",
		"`GOMAXPROCS=1`, 175 µs and 6.5.",
		"answered in 300 µs (p50) for 175 µs of CPU and\n6.5 context switches",
		"the default storm took 450 ms with it, 400 ms without",
		"| ours, GOMAXPROCS=1 | 512 | 90 | 450 ms |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the document lacks %q", want)
		}
	}
}
