// Command storm is the benchmark harness of `make bench`: it replays the
// GetSecret storm a Swarm leader change causes (every running task's secrets
// asked for at once) against the conjur-swarm plugin running as its own
// process, and against a naive driver that authenticates and fetches one
// variable per request, both talking to the same Conjur-compatible server
// (internal/conjurdev) that adds a fixed latency to every request. It also
// measures the latency of one GetSecret through the plugin next to one
// direct conjur-api-go fetch, writes docs/benchmarks.md from the figures,
// and ends its output with one line: RESULT {json}.
//
// It is a development tool: nothing in the product imports it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the harness's flags.
type options struct {
	plugin      string        // path of the conjur-swarm binary
	tasks       int           // N
	secrets     int           // M per task
	variables   int           // D distinct variables
	latency     time.Duration // L added by the server to every request
	concurrency int           // GetSecret calls in flight at most
	reuse       bool          // mapping rule reuse: true (DoNotReuse=false)
	samples     int           // sequential calls for the p50 comparison
	goBench     string        // go test -bench output to include in the doc ("" = none)
	doc         string        // Markdown file to write ("" = none)
	keep        bool          // keep the work directory (logs, mapping)

	// child process roles (the harness starts itself as the Conjur server
	// and as the naive and null drivers)
	child, work, conjurURL, conjurAccount string

	pluginEnv envList // extra plugin settings (experiments)
	extras    bool    // run the other scenarios for the document
	nodes     int     // nodes of the per-node model (the headline)
	rounds    int     // default-storm rounds per driver
	// serverSlots bounds the requests the Conjur stand-in answers at once in
	// the bounded-server scenario (0: skip it)
	serverSlots int
	// authnCost is added to every authentication of the bounded server, on
	// top of latency; boundedTasks sizes that scenario's load (its naive
	// run costs authnCost+latency per Get over serverSlots).
	authnCost    time.Duration
	boundedTasks int
	// scaleNodes and scaleTasks size the scale row: the per-node model with
	// many nodes and Gets (scaleTasks 0: skip it).
	scaleNodes, scaleTasks int
}

func main() {
	var o options
	flag.StringVar(&o.plugin, "plugin", "bin/conjur-swarm", "conjur-swarm binary to run as the plugin process (`make build` makes it)")
	flag.IntVar(&o.tasks, "tasks", 2000, "N: tasks whose secrets are asked for at once")
	flag.IntVar(&o.secrets, "secrets", 5, "M: secrets per task")
	flag.IntVar(&o.variables, "variables", 200, "D: distinct Conjur variables the N x M secrets map to")
	flag.DurationVar(&o.latency, "latency", 2*time.Millisecond, "L: latency the Conjur-compatible server adds to every request during the storm")
	flag.IntVar(&o.concurrency, "concurrency", 512, "GetSecret calls in flight at most (the leader's dispatcher burst), the same for both drivers")
	flag.BoolVar(&o.reuse, "reuse", false, "mapping rule with reuse: true (answers DoNotReuse=false); default reuse: false (DoNotReuse=true)")
	flag.IntVar(&o.samples, "samples", 2000, "sequential calls each for the direct-fetch vs plugin GetSecret p50 (server latency 0)")
	flag.StringVar(&o.goBench, "go-bench", "", "file holding `go test -bench` output to include in the document")
	flag.StringVar(&o.doc, "doc", "", "write the Markdown report to this file, e.g. docs/benchmarks.md")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (plugin log, mapping file) and print its path")
	flag.BoolVar(&o.extras, "extras", true, "also run the other scenarios the document shows (floor, cache on, per-node bound)")
	flag.IntVar(&o.nodes, "nodes", 20, "nodes of the per-node model (the headline): each sends its tasks' secrets one after another, as swarmkit's dispatcher does")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of the default storm per driver, alternating; the median round's figures are reported")
	flag.IntVar(&o.serverSlots, "server-slots", 8, "the bounded-server scenario's Conjur answers at most this many requests at once (0: skip the scenario)")
	flag.DurationVar(&o.authnCost, "authn-cost", 8*time.Millisecond, "the bounded-server scenario adds this to every authentication, on top of -latency")
	flag.IntVar(&o.boundedTasks, "bounded-tasks", 400, "tasks of the bounded-server scenario (its naive run is long: about tasks x secrets x (latency + authn-cost) / server-slots)")
	flag.IntVar(&o.scaleNodes, "scale-nodes", 400, "nodes of the scale row (the per-node model at scale)")
	flag.IntVar(&o.scaleTasks, "scale-tasks", 10000, "tasks of the scale row: scale-tasks x secrets Gets (0: skip the row)")
	flag.Var(&o.pluginEnv, "plugin-env", "extra KEY=VALUE in the plugin's environment (repeatable), e.g. CONJUR_SWARM_CACHE_TTL=30s")
	flag.StringVar(&profileDir, "profile", "", "write the plugin processes' CPU, allocation and peak-heap profiles of every run to DIR/<process>/ (the -plugin binary must be built with -tags profile)")
	flag.StringVar(&o.child, "child", "", "internal: run as the harness's conjur, naive or null child process")
	flag.StringVar(&o.work, "work", "", "internal: the child's work directory")
	flag.StringVar(&o.conjurURL, "conjur-url", "", "internal: the driver child's Conjur URL")
	flag.StringVar(&o.conjurAccount, "conjur-account", "", "internal: the driver child's Conjur account")
	flag.Parse()
	if o.child != "" {
		if err := runChild(o); err != nil {
			fmt.Fprintf(os.Stderr, "storm %s child: %v\n", o.child, err)
			os.Exit(1)
		}
		return
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(2)
	}
	if profileDir != "" {
		abs, err := filepath.Abs(profileDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "storm: -profile:", err)
			os.Exit(2)
		}
		profileDir = abs
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		stop()
		os.Exit(1)
	}
}

func runChild(o options) error {
	switch o.child {
	case "conjur":
		return serveConjur(o.work, o.variables)
	case "naive", "null":
		return serveDriver(o.child, o.work, o.conjurURL, o.conjurAccount)
	}
	return fmt.Errorf("unknown -child %q", o.child)
}

func (o options) validate() error {
	switch {
	case o.tasks < 1 || o.secrets < 1 || o.variables < 1:
		return fmt.Errorf("-tasks, -secrets and -variables must be at least 1")
	case o.concurrency < 1 || o.nodes < 1 || o.rounds < 1:
		return fmt.Errorf("-concurrency, -nodes and -rounds must be at least 1")
	case o.nodes > o.tasks || o.nodes > o.boundedTasks:
		return fmt.Errorf("-nodes must not exceed -tasks or -bounded-tasks (every node runs at least one task)")
	case o.scaleTasks < 0 || (o.scaleTasks > 0 && (o.scaleNodes < 1 || o.scaleNodes > o.scaleTasks)):
		return fmt.Errorf("-scale-tasks must be 0 (no scale row) or at least -scale-nodes, which must be at least 1")
	case o.authnCost < 0:
		return fmt.Errorf("-authn-cost must not be negative")
	case o.serverSlots < 0:
		return fmt.Errorf("-server-slots must not be negative")
	case o.samples < 1:
		return fmt.Errorf("-samples must be at least 1")
	case o.latency < 0:
		return fmt.Errorf("-latency must not be negative")
	}
	if _, err := os.Stat(o.plugin); err != nil {
		return fmt.Errorf("-plugin %s: %w (run `make build` first)", o.plugin, err)
	}
	return nil
}

// result is the RESULT line's object.
type result struct {
	NaiveConjurRequests int64   `json:"naive_conjur_requests"`
	OursConjurRequests  int64   `json:"ours_conjur_requests"`
	NaiveWallMS         float64 `json:"naive_wall_ms"`
	OursWallMS          float64 `json:"ours_wall_ms"`
	OursP99MS           float64 `json:"ours_p99_ms"`
	DirectFetchP50US    float64 `json:"direct_fetch_p50_us"`
	PluginGetP50US      float64 `json:"plugin_get_p50_us"`
	PluginPeakRSSMiB    float64 `json:"plugin_peak_rss_mib"`

	PernodeNodes               int     `json:"pernode_nodes"`
	PernodeOursWallMS          float64 `json:"pernode_ours_wall_ms"`
	PernodeNaiveWallMS         float64 `json:"pernode_naive_wall_ms"`
	PernodeFloorWallMS         float64 `json:"pernode_floor_wall_ms"`
	PernodeLimitMS             float64 `json:"pernode_limit_ms"`
	PernodeOursP50MS           float64 `json:"pernode_ours_p50_ms"`
	PernodeOursConjurRequests  int64   `json:"pernode_ours_conjur_requests"`
	PernodeNaiveConjurRequests int64   `json:"pernode_naive_conjur_requests"`
	PernodePrefetchWallMS      float64 `json:"pernode_prefetch_wall_ms"`
	PernodePrefetchRequests    int64   `json:"pernode_prefetch_conjur_requests"`
	PernodeIdentityWallMS      float64 `json:"pernode_identity_wall_ms"`
	PernodeIdentityRequests    int64   `json:"pernode_identity_conjur_requests"`
	PernodeOursCPUUSPerGet     float64 `json:"pernode_ours_cpu_us_per_get"`
	PernodeFloorCPUUSPerGet    float64 `json:"pernode_floor_cpu_us_per_get"`
	BoundedOursWallMS          float64 `json:"bounded_ours_wall_ms,omitempty"`
	BoundedNaiveWallMS         float64 `json:"bounded_naive_wall_ms,omitempty"`

	ScaleNodes              int     `json:"scale_nodes,omitempty"`
	ScaleGets               int     `json:"scale_gets,omitempty"`
	ScaleOursWallMS         float64 `json:"scale_ours_wall_ms,omitempty"`
	ScaleNaiveWallMS        float64 `json:"scale_naive_wall_ms,omitempty"`
	ScaleFloorWallMS        float64 `json:"scale_floor_wall_ms,omitempty"`
	ScaleOursConjurRequests int64   `json:"scale_ours_conjur_requests,omitempty"`
	ScalePeakRSSMiB         float64 `json:"scale_peak_rss_mib,omitempty"`
}

// run starts the processes, then measures in phases: one call at a time,
// the default storm in rounds, the other scenarios; then writes the report
// and the RESULT line.
func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "conjur-swarm-storm-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	env := captureEnv()
	env.LoadBefore = loadAvg()

	f, err := startFleet(ctx, o, work)
	if err != nil {
		return err
	}
	defer f.stop()

	lat, err := latencyPhase(ctx, o, f)
	if err != nil {
		return err
	}
	load := newLoad(o)
	pn, err := perNodePhase(ctx, o, load, f)
	if err != nil {
		return err
	}
	ours, nv, oursRuns, naiveRuns, err := stormPhase(ctx, o, load, f)
	if err != nil {
		return err
	}
	bd, err := boundedPhase(ctx, o, f)
	if err != nil {
		return err
	}
	sc, err := scalePhase(ctx, o, f)
	if err != nil {
		return err
	}
	env.LoadAfter = loadAvg()
	fmt.Printf("load average before %s, after %s\n", env.LoadBefore, env.LoadAfter)

	// Other scenarios for the document, not in RESULT.
	var extras []stormResult
	if o.extras {
		if extras, err = runExtras(ctx, o, load, f); err != nil {
			return err
		}
	}
	res := newResult(o, lat, pn, ours, nv, bd, sc)
	if o.doc != "" {
		rep := report{opts: o, env: env, res: res, ours: ours, naive: nv, lat: lat, oursRuns: oursRuns, naiveRuns: naiveRuns, extras: extras, plugin: f.pluginSettings,
			perNode: pn, bounded: bd, scale: sc}
		if err := writeReport(o, rep); err != nil {
			return err
		}
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println("RESULT " + string(line))
	return nil
}

// writeReport writes the Markdown report to o.doc, with the Go benchmark
// output of o.goBench when given.
func writeReport(o options, rep report) error {
	if o.goBench != "" {
		goBench, err := os.ReadFile(o.goBench)
		if err != nil {
			return fmt.Errorf("-go-bench: %w", err)
		}
		rep.goBench = string(goBench)
	}
	previous, _ := os.ReadFile(o.doc) // absent at first: nothing to keep
	if err := os.WriteFile(o.doc, []byte(keepClusterBlock(renderDoc(rep), string(previous))), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", o.doc)
	return nil
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return fmt.Sprint(*e) }

func (e *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

// newResult is the RESULT line of the figures.
func newResult(o options, lat latencies, pn perNodeResult, ours, nv stormResult, bd *boundedResult, sc *scaleResult) result {
	res := result{
		NaiveConjurRequests: nv.requests,
		OursConjurRequests:  ours.requests,
		NaiveWallMS:         round(ms(nv.wall), 1),
		OursWallMS:          round(ms(ours.wall), 1),
		OursP99MS:           round(ms(ours.lat.p99), 2),
		DirectFetchP50US:    round(usf(lat.direct.p50), 1),
		PluginGetP50US:      round(usf(lat.plugin.p50), 1),
		PluginPeakRSSMiB:    round(float64(max(ours.rssKiB, pn.ours.rssKiB))/1024, 1),

		PernodeNodes:               o.nodes,
		PernodeOursWallMS:          round(ms(pn.ours.wall), 1),
		PernodeNaiveWallMS:         round(ms(pn.naive.wall), 1),
		PernodeFloorWallMS:         round(ms(pn.floor.wall), 1),
		PernodeLimitMS:             round(pn.limitMS(o), 1),
		PernodeOursP50MS:           round(ms(pn.ours.lat.p50), 2),
		PernodeOursConjurRequests:  pn.ours.requests,
		PernodeNaiveConjurRequests: pn.naive.requests,
		PernodePrefetchWallMS:      round(ms(pn.prefetch.wall), 1),
		PernodePrefetchRequests:    pn.prefetch.requests,
		PernodeIdentityWallMS:      round(ms(pn.identity.wall), 1),
		PernodeIdentityRequests:    pn.identity.requests,
		PernodeOursCPUUSPerGet:     round(pn.ours.cpuPerGetUS(), 1),
		PernodeFloorCPUUSPerGet:    round(pn.floor.cpuPerGetUS(), 1),
	}
	if bd != nil {
		res.BoundedOursWallMS, res.BoundedNaiveWallMS = round(ms(bd.ours.wall), 1), round(ms(bd.naive.wall), 1)
	}
	if sc != nil {
		res.ScaleNodes, res.ScaleGets = sc.nodes, sc.ours.gets
		res.ScaleOursWallMS, res.ScaleNaiveWallMS, res.ScaleFloorWallMS = round(ms(sc.ours.wall), 1), round(ms(sc.naive.wall), 1), round(ms(sc.floor.wall), 1)
		res.ScaleOursConjurRequests = sc.ours.requests
		res.ScalePeakRSSMiB = round(float64(sc.ours.rssKiB)/1024, 1)
	}
	return res
}
