package cluster

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

var docPath = flag.String("cluster.doc", "", "rewrite the real-swarm storm block of this Markdown file (make e2e-cluster: docs/benchmarks.md) from the storm's figures")

// The block of docs/benchmarks.md this suite owns; make bench (bench/storm)
// carries it over when it rewrites the rest.
const (
	docBlockBegin = "<!-- e2e-cluster:begin -->"
	docBlockEnd   = "<!-- e2e-cluster:end -->"
)

// stormDoc is the storm's part of the CLUSTER figures, for the document.
type stormDoc struct {
	ours, naive stormResult
	engine      string
	at          time.Time
	// The lab Conjur's round trip from rttFrom's network namespace: one
	// variable, and the batch of the storm's variables.
	rttMS, batchRTTMS float64
	rttFrom           string
}

var stormForDoc *stormDoc

// withBlock returns doc with its cluster block replaced by block (added at
// the end when it has none).
func withBlock(doc, block string) string {
	block = docBlockBegin + "\n" + strings.TrimSpace(block) + "\n" + docBlockEnd
	begin, end := strings.Index(doc, docBlockBegin), strings.Index(doc, docBlockEnd)
	if begin >= 0 && end > begin {
		return doc[:begin] + block + doc[end+len(docBlockEnd):]
	}
	return strings.TrimRight(doc, "\n") + "\n\n" + block + "\n"
}

// byNode renders a Gets-by-node map in node order.
func byNode(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// requests is a storm's Conjur requests, with the endpoints they asked.
func requests(r stormResult) string {
	if len(r.ByEndpoint) == 0 {
		return fmt.Sprint(r.ConjurRequests)
	}
	var eps []string
	for ep := range r.ByEndpoint {
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	for i, ep := range eps {
		eps[i] = fmt.Sprintf("%s %d", ep, r.ByEndpoint[ep])
	}
	return fmt.Sprintf("%d (%s)", r.ConjurRequests, strings.Join(eps, ", "))
}

// renderStorm is the Markdown of the real-swarm storm.
func renderStorm(d stormDoc) string {
	o, n := d.ours, d.naive
	var b strings.Builder
	fmt.Fprintf(&b, "## A real leader change (`make e2e-cluster`)\n\n")
	fmt.Fprintf(&b, "Written by `make e2e-cluster` (e2e/cluster, see [ha.md](ha.md)) on %s, %d CPUs, Docker Engine %s: a swarm of\n", d.at.UTC().Format("2006-01-02"), runtime.NumCPU(), d.engine)
	fmt.Fprintf(&b, "%d managers and %d worker, each its own dockerd on this one machine. One service of %d tasks spread over\n", managers, workers, o.Tasks)
	fmt.Fprintf(&b, "the four nodes, each task with %d driver secrets; then one leader change (`docker node demote` of the\n", o.Secrets)
	b.WriteString("leader, which hands leadership to another manager). The figures are read from the new leader's plugin\n")
	b.WriteString("(its audit lines: when each Get started and ended) and from the Conjur-compatible servers' request\n")
	b.WriteString("counters. The same run then removes that service and does the same with a naive managed plugin (a new\n")
	b.WriteString("conjur-api-go client, authentication and one fetch per Get; e2e/cluster/testdata/naive).\n\n")
	b.WriteString("| at the new leader | conjur-swarm | naive plugin |\n| --- | --- | --- |\n")
	row := func(name, a, bb string) { fmt.Fprintf(&b, "| %s | %s | %s |\n", name, a, bb) }
	row("GetSecret calls received", fmt.Sprint(o.Gets), fmt.Sprint(n.Gets))
	row("per task and secret", fmt.Sprintf("%.2f", o.GetsPerTaskSec), fmt.Sprintf("%.2f", n.GetsPerTaskSec))
	row("by node of the task", byNode(o.ByNode), byNode(n.ByNode))
	row("Conjur requests it sent", requests(o), requests(n))
	row("**per-Get latency at the plugin, p50 / p99**", fmt.Sprintf("%.3f / %.3f ms", o.GetP50MS, o.GetP99MS), fmt.Sprintf("%.3f / %.3f ms", n.GetP50MS, n.GetP99MS))
	row("Gets served from memory (prefetched for the task, or the value cache)", fmt.Sprint(o.FromMemory), fmt.Sprint(n.FromMemory))
	row("per-Get p50 of the others (each waited for a Conjur answer)", fmt.Sprintf("%.3f ms", o.FetchP50MS), fmt.Sprintf("%.3f ms", n.FetchP50MS))
	row("driver busy time (sum of the Gets' durations)", fmt.Sprintf("%d ms", o.BusyMS), fmt.Sprintf("%d ms", n.BusyMS))
	row("first to last Get (swarmkit pacing, not the driver's speed)", fmt.Sprintf("%d ms", o.SpanMS), fmt.Sprintf("%d ms", n.SpanMS))
	row("most Gets in flight at once", fmt.Sprint(o.MaxInFlight), fmt.Sprint(n.MaxInFlight))
	row("failed Gets", fmt.Sprint(o.Failed), fmt.Sprint(n.Failed))
	row("demote to the new leader seen", fmt.Sprintf("%d ms", o.ElectionMS), fmt.Sprintf("%d ms", n.ElectionMS))
	row("machine's load average (1, 5, 15 min) at the leader change", o.LoadAvg, n.LoadAvg)
	fmt.Fprintf(&b, "\nThe lab Conjur's round trip from %s, the node where conjur-swarm's Gets were measured, is %.3f ms for one\n", d.rttFrom, d.rttMS)
	fmt.Fprintf(&b, "variable and %.3f ms for the batch of the storm's %d variables (what a task's first Get sends with prefetch\n", d.batchRTTMS, o.Secrets)
	b.WriteString("on): the p50 of 50 authenticated reads as the plugin's host, one after another on one kept-alive TLS\n")
	b.WriteString("connection, from a process in that node's network namespace (the plugin's path to Conjur), timed after\n")
	fmt.Fprintf(&b, "conjur-swarm's burst. A Get at the plugin took %.3f ms (p50) with conjur-swarm, %.3f ms for those that\n", o.GetP50MS, o.FetchP50MS)
	fmt.Fprintf(&b, "waited for a Conjur answer, and %.3f ms with the naive plugin. The first-to-last span is when swarmkit\n", n.GetP50MS)
	b.WriteString("asked each node again, which the driver does not set: it is not a speed comparison.\n")
	b.WriteString("The load average row says how busy the machine (2 CPUs) was as each leader change began: the lab's own\n")
	b.WriteString("containers starting on fuse-overlayfs (processes waiting on I/O count in it) and other work on the\n")
	b.WriteString("machine; the latencies carry that noise.\n")
	fmt.Fprintf(&b, "\nWhat it says about the model `make bench` assumes: the leader change re-asked for the running tasks'\n")
	fmt.Fprintf(&b, "secrets, %.2f (conjur-swarm) and %.2f (naive) times per task and secret", o.GetsPerTaskSec, n.GetsPerTaskSec)
	if o.GetsPerTaskSec == 1 && n.GetsPerTaskSec == 1 {
		b.WriteString(", so the burst is tasks x secrets Gets.")
	} else {
		b.WriteString(": not exactly once (a node whose session moved twice is asked twice, one whose session the\n")
		b.WriteString("change did not move, not at all: see the by-node row), so the burst is of the order of tasks x secrets.")
	}
	nodes := managers + workers
	if max(o.MaxInFlight, n.MaxInFlight) <= nodes {
		fmt.Fprintf(&b, "\nIt arrived node by node, not all at once: at most %d (conjur-swarm) and %d (naive) Gets were in flight,\n", o.MaxInFlight, n.MaxInFlight)
		fmt.Fprintf(&b, "no more than the %d nodes, because the dispatcher fetches one node's secrets one after another. So the\n", nodes)
		fmt.Fprintf(&b, "latency of each Get adds up, paced by swarmkit: first to last Get %d ms with conjur-swarm and %d ms with the naive plugin.\n", o.SpanMS, n.SpanMS)
		b.WriteString("The per-node model above (in-flight bound = nodes) is the one that matches it; the default storm's 512\n")
		b.WriteString("concurrent Gets is an upper bound this leader change did not come near.\n")
	} else {
		fmt.Fprintf(&b, "\nAt most %d (conjur-swarm) and %d (naive) Gets were in flight, more than the %d nodes:\n", o.MaxInFlight, n.MaxInFlight, nodes)
		b.WriteString("the dispatcher did not fetch one node's secrets strictly one after another in this run.\n")
	}
	fmt.Fprintf(&b, "\nReproduce as root: `make e2e-cluster` (%d storm tasks here; another size with\n`CLUSTER_FLAGS=-cluster.storm-tasks=N`).\n", o.Tasks)
	return b.String()
}

// writeDoc rewrites the block of *docPath when the storm ran.
func writeDoc() error {
	if *docPath == "" || stormForDoc == nil {
		return nil
	}
	old, err := os.ReadFile(*docPath)
	if err != nil {
		return err
	}
	return os.WriteFile(*docPath, []byte(withBlock(string(old), renderStorm(*stormForDoc))), 0o644)
}

func TestWithBlock(t *testing.T) {
	tests := []struct{ name, doc, block, want string }{
		{
			name:  "ok/replaces the block in place",
			doc:   "# B\n\n" + docBlockBegin + "\nold\n" + docBlockEnd + "\n\ntail\n",
			block: "new\n",
			want:  "# B\n\n" + docBlockBegin + "\nnew\n" + docBlockEnd + "\n\ntail\n",
		},
		{
			name:  "ok/appends a block the document lacks",
			doc:   "# B\n",
			block: "new",
			want:  "# B\n\n" + docBlockBegin + "\nnew\n" + docBlockEnd + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withBlock(tt.doc, tt.block); got != tt.want {
				t.Errorf("withBlock:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRenderStormStatesTheFigures(t *testing.T) {
	d := stormDoc{
		ours: stormResult{Tasks: 200, Secrets: 3, Gets: 900, GetsPerTaskSec: 1.5, ConjurRequests: 310, SpanMS: 12846, MaxInFlight: 3, ByNode: map[string]int{"m1 (old leader)": 150, "w1": 150},
			GetP50MS: 1.25, GetP99MS: 8.5, BusyMS: 1400, FromMemory: 400, FetchP50MS: 2.5, LoadAvg: "3.10 2.00 1.50"},
		naive:  stormResult{Tasks: 200, Secrets: 3, Gets: 600, GetsPerTaskSec: 1, ConjurRequests: 1400, ByEndpoint: map[string]int64{"secret": 700, "authn": 700}, LoadAvg: "4.20 2.50 1.70", SpanMS: 14019, MaxInFlight: 1, GetP50MS: 4.75, GetP99MS: 20, BusyMS: 3100},
		engine: "20.10.24", at: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), rttMS: 0.85, batchRTTMS: 0.95, rttFrom: "m2",
	}
	got := renderStorm(d)
	for _, want := range []string{"| GetSecret calls received | 900 | 600 |", "| Conjur requests it sent | 310 | 1400 (authn 700, secret 700) |",
		"m1 (old leader) 150, w1 150", "1.50 (conjur-swarm) and 1.00 (naive) times", "not exactly once",
		"at most 3 (conjur-swarm) and 1", "first to last Get 12846 ms with conjur-swarm and 14019 ms",
		"| **per-Get latency at the plugin, p50 / p99** | 1.250 / 8.500 ms | 4.750 / 20.000 ms |", "| driver busy time (sum of the Gets' durations) | 1400 ms | 3100 ms |",
		"| Gets served from memory (prefetched for the task, or the value cache) | 400 | 0 |",
		"| per-Get p50 of the others (each waited for a Conjur answer) | 2.500 ms | 0.000 ms |",
		"| first to last Get (swarmkit pacing, not the driver's speed) | 12846 ms | 14019 ms |", "round trip from m2, the node where conjur-swarm's Gets were measured, is 0.850 ms for one",
		"0.950 ms for the batch of the storm's 3 variables",
		"1.250 ms (p50) with conjur-swarm, 2.500 ms for those", "4.750 ms with the naive plugin", "| machine's load average (1, 5, 15 min) at the leader change | 3.10 2.00 1.50 | 4.20 2.50 1.70 |",
		"200 storm tasks"} {
		if !strings.Contains(got, want) {
			t.Errorf("the storm section lacks %q:\n%s", want, got)
		}
	}
	d.ours.MaxInFlight = 9
	if got := renderStorm(d); strings.Contains(got, "is the one that matches") {
		t.Errorf("with more Gets in flight than nodes the section still claims the per-node model matches:\n%s", got)
	}
}
