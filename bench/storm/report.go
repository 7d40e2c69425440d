package main

import (
	"bufio"
	_ "embed"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// machine describes where the figures came from.
type machine struct {
	CPUs       int
	CPUModel   string
	GoVersion  string
	Kernel     string
	Date       time.Time
	LoadBefore string
	LoadAfter  string
}

func captureEnv() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now().UTC(), CPUModel: "unknown", Kernel: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// benchLine is one result line of `go test -bench` output.
type benchLine struct {
	pkg, name string
	metrics   [][2]string // value, unit, in output order
}

// parseGoBench reads the result lines of `go test -bench` output; other
// lines are skipped.
func parseGoBench(out string) []benchLine {
	var lines []benchLine
	pkg := ""
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "pkg: "); ok {
			pkg = strings.TrimPrefix(strings.TrimSpace(rest), "github.com/cyberark/conjur-swarm/")
			continue
		}
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		b := benchLine{pkg: pkg, name: f[0]}
		for i := 2; i+1 < len(f); i += 2 {
			b.metrics = append(b.metrics, [2]string{f[i], f[i+1]})
		}
		lines = append(lines, b)
	}
	return lines
}

func (b benchLine) metric(unit string) string {
	for _, m := range b.metrics {
		if m[1] == unit {
			return m[0]
		}
	}
	return ""
}

func (b benchLine) others() string {
	var parts []string
	for _, m := range b.metrics {
		switch m[1] {
		case "ns/op", "B/op", "allocs/op":
		default:
			parts = append(parts, m[0]+" "+m[1])
		}
	}
	return strings.Join(parts, ", ")
}

type report struct {
	opts        options
	env         machine
	res         result
	ours, naive stormResult
	lat         latencies
	oursRuns    []stormResult // every round of the default storm
	naiveRuns   []stormResult
	extras      []stormResult
	goBench     string
	plugin      []string
	perNode     perNodeResult  // the headline
	bounded     *boundedResult // nil when not run
	scale       *scaleResult   // nil when not run
}

func ratio(a, b float64) string {
	if b == 0 {
		return "∞"
	}
	return fmt.Sprintf("%.1f×", a/b)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func walls(runs []stormResult) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = fmt.Sprintf("%.0f", ms(r.wall))
	}
	return strings.Join(parts, ", ") + " ms"
}

func (r stormResult) totalCPU() time.Duration { return r.cpu + r.clientCPU + r.conjurCPU }

func cpuMS(d time.Duration) string { return fmt.Sprintf("%.0f ms", ms(d)) }

func findExtra(extras []stormResult, prefix string) (stormResult, bool) {
	for _, e := range extras {
		if strings.HasPrefix(e.name, prefix) {
			return e, true
		}
	}
	return stormResult{}, false
}

//go:embed report.md.tmpl
var reportTemplate string

var docTemplate = template.Must(template.New("benchmarks.md").Funcs(template.FuncMap{
	"ratio":   func(a, b any) string { return ratio(toFloat(a), toFloat(b)) },
	"verdict": verdict,
	"f0":      func(x float64) string { return fmt.Sprintf("%.0f", x) },
	"f1":      func(x float64) string { return fmt.Sprintf("%.1f", x) },
	"f2":      func(x float64) string { return fmt.Sprintf("%.2f", x) },
}).Parse(reportTemplate))

// renderDoc writes docs/benchmarks.md: report.md.tmpl filled from r.
func renderDoc(r report) string {
	var sb strings.Builder
	if err := docTemplate.Execute(&sb, newDocView(r)); err != nil {
		panic(fmt.Sprintf("report.md.tmpl: %v", err)) // the template and the view are fixed: a test renders them
	}
	return sb.String()
}

func toFloat(x any) float64 {
	switch v := x.(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	case int:
		return float64(v)
	}
	panic(fmt.Sprintf("ratio of a %T", x))
}

// docView is what report.md.tmpl reads: the report's figures, in the units
// the document shows (ms and µs as float64, CPU times as text).
type docView struct {
	Env                   machine
	O                     optionsView
	Res                   result
	Ours, Naive           scenarioView
	OursWalls, NaiveWalls string
	Lat                   latencyView
	PluginEnv             []string
	Scenarios             []scenarioView // the default storm and the extras; none without extras
	GoBench               []benchRow

	RequestsMet, WallMet, RSSMet, P50Met bool
	P50Limit                             float64

	// The extras the prose of "What limits it" refers to (nil: not run).
	Floor, Cached, OnePStorm *scenarioView

	PerNode perNodeView
	Bounded *boundedView
	Scale   *scaleView

	OursOverFloorUS, OursCPUPerGetUS float64
	HasInProcess                     bool
	InProcessAddUS                   float64
}

// perNodeView is the headline: the per-node model.
type perNodeView struct {
	Ours, Naive, Floor, Prefetch, Identity                          scenarioView
	OursWalls, NaiveWalls, FloorWalls, PrefetchWalls, IdentityWalls string
	GetsPerNode, Stacks                                             int
	LimitMS, RoundTripMS                                            float64
	// The goals of issue 16 and whether they were met.
	WallGoalMS, P50GoalMS, RequestsGoal      float64
	WallMet, P50Met, RequestsMet             bool
	PrefetchWallGoalMS, PrefetchRequestsGoal float64
	PrefetchWallMet, PrefetchRequestsMet     bool
	// The plugin's CPU per Get (/proc of the process, during the rounds)
	// against the null driver's, and the goal (issue 25).
	OursCPUUS, FloorCPUUS, CPUGoalUS float64
	CPUMet                           bool
}

// scaleView is the scale row: the per-node model with many nodes and Gets.
type scaleView struct {
	Ours, Naive, Floor scenarioView
	Nodes, Gets        int
	OursCPUUS          float64
	WallGoalMS         float64
	WallMet, RSSMet    bool
}

// boundedView is the per-node model against a Conjur of bounded capacity.
type boundedView struct {
	Ours, Naive               scenarioView
	Tasks, Gets, Slots        int
	AuthnMS, FetchMS, LimitMS float64
	FasterMet                 bool
}

type optionsView struct {
	Rounds, Tasks, Secrets, Variables, Gets, GetsPerVariable, Concurrency, Nodes, ServerSlots int
	Latency                                                                                   time.Duration
	Reuse                                                                                     bool
}

type scenarioView struct {
	Title                               string
	Gets, InFlight, Failed, DoNotReuse  int
	Requests                            int64
	ByEndpoint                          string
	Wall, P50, P99, Max                 float64 // ms
	CPU, ClientCPU, ConjurCPU, TotalCPU string
	TotalCPUNS                          float64
	RSSMiB                              float64
}

type latencyView struct {
	Samples                      int
	Rows                         []latencyRow
	Direct, Client, Socket, OneP latencyRow
	PluginCPU, OnePCPU           float64 // µs
	PluginSwitches, OnePSwitches float64
	HasOneP                      bool
}

type latencyRow struct {
	Name          string
	P50, P90, P99 float64 // µs
}

type benchRow struct{ Pkg, Name, NS, B, Allocs, Others string }

// scenarioTitles are the table's names of the default storm's results.
var scenarioTitles = map[string]string{
	"ours":  "conjur-swarm (default storm)",
	"naive": "naive (default storm)",
	"floor": "floor: null driver, answers from memory",
}

func newScenarioView(r stormResult) scenarioView {
	title := r.name
	if t, ok := scenarioTitles[r.name]; ok {
		title = t
	}
	return scenarioView{
		Title: title, Gets: r.gets, InFlight: r.inFlight, Failed: r.failed, DoNotReuse: r.doNotReuse,
		Requests: r.requests, ByEndpoint: r.byEndpoint,
		Wall: ms(r.wall), P50: ms(r.lat.p50), P99: ms(r.lat.p99), Max: ms(r.lat.max),
		CPU: cpuMS(r.cpu), ClientCPU: cpuMS(r.clientCPU), ConjurCPU: cpuMS(r.conjurCPU), TotalCPU: cpuMS(r.totalCPU()),
		TotalCPUNS: float64(r.totalCPU()), RSSMiB: float64(r.rssKiB) / 1024,
	}
}

func newLatencyRow(name string, p percentiles) latencyRow {
	return latencyRow{Name: name, P50: usf(p.p50), P90: usf(p.p90), P99: usf(p.p99)}
}

func newDocView(r report) docView {
	o, res := r.opts, r.res
	v := docView{
		Env: r.env,
		O: optionsView{Rounds: o.rounds, Tasks: o.tasks, Secrets: o.secrets, Variables: o.variables,
			Gets: o.tasks * o.secrets, GetsPerVariable: o.tasks * o.secrets / o.variables,
			Concurrency: o.concurrency, Nodes: o.nodes, ServerSlots: o.serverSlots, Latency: o.latency, Reuse: o.reuse},
		Res:  res,
		Ours: newScenarioView(r.ours), Naive: newScenarioView(r.naive),
		OursWalls: walls(r.oursRuns), NaiveWalls: walls(r.naiveRuns),
		RequestsMet:     res.OursConjurRequests*20 <= res.NaiveConjurRequests,
		WallMet:         res.OursWallMS*10 <= res.NaiveWallMS,
		RSSMet:          res.PluginPeakRSSMiB <= 45,
		P50Limit:        1.2*res.DirectFetchP50US + 200,
		OursCPUPerGetUS: usf(r.ours.cpu / time.Duration(max(1, r.ours.gets))),
	}
	v.P50Met = res.PluginGetP50US <= v.P50Limit

	v.Lat = newLatencyView(r.lat)

	for _, s := range r.plugin {
		k, val, _ := strings.Cut(s, "=")
		switch k {
		case "CONJUR_APPLIANCE_URL":
			val = "http://127.0.0.1:<port>"
		case "CONJUR_SWARM_CREDENTIAL_FILE", "CONJUR_SWARM_MAPPING_FILE", "CONJUR_SWARM_SOCKET":
			val = "<work dir>/" + val[strings.LastIndexByte(val, '/')+1:]
		}
		v.PluginEnv = append(v.PluginEnv, k+"="+val)
	}
	if len(r.extras) > 0 {
		for _, e := range append([]stormResult{r.ours, r.naive}, r.extras...) {
			v.Scenarios = append(v.Scenarios, newScenarioView(e))
		}
	}
	lines := parseGoBench(r.goBench)
	for _, b := range lines {
		v.GoBench = append(v.GoBench, benchRow{b.pkg, b.name, b.metric("ns/op"), b.metric("B/op"), b.metric("allocs/op"), b.others()})
	}

	extra := func(prefix string) *scenarioView {
		if e, ok := findExtra(r.extras, prefix); ok {
			sv := newScenarioView(e)
			return &sv
		}
		return nil
	}
	v.Floor, v.Cached = extra("floor"), extra("ours, reuse")
	v.OnePStorm = extra(onePName)

	rtt := ms(o.latency)
	v.PerNode = newPerNodeView(r.perNode, o)
	v.Scale = newScaleView(r.scale)
	if b := r.bounded; b != nil {
		v.Bounded = &boundedView{Ours: newScenarioView(b.ours), Naive: newScenarioView(b.naive), Tasks: b.tasks, Gets: b.tasks * o.secrets,
			Slots: o.serverSlots, AuthnMS: ms(o.latency + o.authnCost), FetchMS: rtt,
			LimitMS: float64(b.tasks*o.secrets) / float64(max(1, o.nodes)) * rtt}
		v.Bounded.FasterMet = b.ours.wall*10 <= b.naive.wall
	}
	if floor, ok := findExtra(r.extras, "floor"); ok {
		v.OursOverFloorUS = usf((r.ours.cpu - floor.cpu) / time.Duration(max(1, r.ours.gets)))
	}
	if sock, direct, ok := inProcess(lines); ok {
		v.HasInProcess, v.InProcessAddUS = true, (sock-direct)/1000
	}
	return v
}

// inProcess returns the ns/op of BenchmarkGetSecretSocket and
// BenchmarkDirectFetch when both ran.
func inProcess(lines []benchLine) (sock, direct float64, ok bool) {
	var okS, okD bool
	for _, b := range lines {
		v, err := strconv.ParseFloat(b.metric("ns/op"), 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(b.name, "BenchmarkGetSecretSocket"):
			sock, okS = v, true
		case strings.HasPrefix(b.name, "BenchmarkDirectFetch"):
			direct, okD = v, true
		}
	}
	return sock, direct, okS && okD
}

// newScaleView is the scale row's view (nil when it did not run).
func newScaleView(s *scaleResult) *scaleView {
	if s == nil {
		return nil
	}
	v := &scaleView{Ours: newScenarioView(s.ours), Naive: newScenarioView(s.naive), Floor: newScenarioView(s.floor),
		Nodes: s.nodes, Gets: s.ours.gets, OursCPUUS: s.ours.cpuPerGetUS(), WallGoalMS: 2 * ms(s.floor.wall)}
	v.WallMet = v.Ours.Wall <= v.WallGoalMS
	v.RSSMet = v.Ours.RSSMiB <= 50
	return v
}

// newLatencyView is the one-call-at-a-time figures' view.
func newLatencyView(l latencies) latencyView {
	v := latencyView{Samples: l.samples,
		Direct:    newLatencyRow("direct conjur-api-go `RetrieveSecret` from the harness", l.direct),
		Client:    newLatencyRow("the plugin's Conjur client alone (`conjur.Client.Get`) in the harness", l.client),
		Socket:    newLatencyRow("GetSecret to the null driver (socket and protocol only, no Conjur)", l.socket),
		PluginCPU: usf(l.pluginCPU), PluginSwitches: l.pluginSwitches, HasOneP: l.hasOneP}
	v.Rows = []latencyRow{v.Direct, v.Client, v.Socket,
		newLatencyRow("**GetSecret through the plugin** (socket, driver, policy, Conjur client, Conjur)", l.plugin)}
	if l.hasOneP {
		v.OneP = newLatencyRow("GetSecret through the same plugin run with `GOMAXPROCS=1` (an experiment, not the default)", l.oneP)
		v.Rows = append(v.Rows, v.OneP)
		v.OnePCPU, v.OnePSwitches = usf(l.onePCPU), l.onePSwitches
	}
	return v
}

// newPerNodeView is the headline's view, with the goals of issues 16 and 25.
func newPerNodeView(pn perNodeResult, o options) perNodeView {
	rtt := ms(o.latency)
	v := perNodeView{Ours: newScenarioView(pn.ours), Naive: newScenarioView(pn.naive), Floor: newScenarioView(pn.floor), Prefetch: newScenarioView(pn.prefetch),
		OursWalls: walls(pn.oursRuns), NaiveWalls: walls(pn.naiveRuns), FloorWalls: walls(pn.floorRuns), PrefetchWalls: walls(pn.prefetchRuns),
		Identity: newScenarioView(pn.identity), IdentityWalls: walls(pn.identityRuns), Stacks: identityStacks,
		GetsPerNode: o.tasks * o.secrets / max(1, o.nodes), LimitMS: pn.limitMS(o), RoundTripMS: rtt}
	v.WallGoalMS, v.P50GoalMS, v.RequestsGoal = 1.3*v.LimitMS, rtt+0.6, float64(pn.naive.requests)/4
	v.WallMet = v.Ours.Wall <= v.WallGoalMS
	v.P50Met = v.Ours.P50 <= v.P50GoalMS
	v.RequestsMet = float64(pn.ours.requests) <= v.RequestsGoal
	v.PrefetchWallGoalMS, v.PrefetchRequestsGoal = 0.5*v.LimitMS, float64(pn.naive.requests)/10
	v.PrefetchWallMet = v.Prefetch.Wall <= v.PrefetchWallGoalMS
	v.PrefetchRequestsMet = float64(pn.prefetch.requests) <= v.PrefetchRequestsGoal
	v.OursCPUUS, v.FloorCPUUS = pn.ours.cpuPerGetUS(), pn.floor.cpuPerGetUS()
	v.CPUGoalUS = 2.5 * v.FloorCPUUS
	v.CPUMet = v.OursCPUUS <= v.CPUGoalUS
	return v
}
