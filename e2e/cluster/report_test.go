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
	rttMS       float64 // the lab Conjur's round trip from the test host
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
	b.WriteString("counters. The same run then does the same with a naive managed plugin (a new conjur-api-go client,\n")
	b.WriteString("authentication and one fetch per Get; e2e/cluster/testdata/naive).\n\n")
	b.WriteString("| at the new leader | conjur-swarm | naive plugin |\n| --- | --- | --- |\n")
	row := func(name, a, bb string) { fmt.Fprintf(&b, "| %s | %s | %s |\n", name, a, bb) }
	row("GetSecret calls received", fmt.Sprint(o.Gets), fmt.Sprint(n.Gets))
	row("per task and secret", fmt.Sprintf("%.2f", o.GetsPerTaskSec), fmt.Sprintf("%.2f", n.GetsPerTaskSec))
	row("by node of the task", byNode(o.ByNode), byNode(n.ByNode))
	row("Conjur requests it sent", fmt.Sprint(o.ConjurRequests), fmt.Sprint(n.ConjurRequests))
	row("**per-Get latency at the plugin, p50 / p99**", fmt.Sprintf("%.2f / %.2f ms", o.GetP50MS, o.GetP99MS), fmt.Sprintf("%.2f / %.2f ms", n.GetP50MS, n.GetP99MS))
	row("driver busy time (sum of the Gets' durations)", fmt.Sprintf("%d ms", o.BusyMS), fmt.Sprintf("%d ms", n.BusyMS))
	row("first to last Get (swarmkit pacing, not the driver's speed)", fmt.Sprintf("%d ms", o.SpanMS), fmt.Sprintf("%d ms", n.SpanMS))
	row("most Gets in flight at once", fmt.Sprint(o.MaxInFlight), fmt.Sprint(n.MaxInFlight))
	row("failed Gets", fmt.Sprint(o.Failed), fmt.Sprint(n.Failed))
	row("demote to the new leader seen", fmt.Sprintf("%d ms", o.ElectionMS), fmt.Sprintf("%d ms", n.ElectionMS))
	fmt.Fprintf(&b, "\nThe lab Conjur's round trip from the host is %.2f ms (p50 of 20 authenticated reads of one variable on one\nconnection); a Get at the\n", d.rttMS)
	fmt.Fprintf(&b, "plugin took %.2f ms (p50) with conjur-swarm and %.2f ms with the naive plugin. The first-to-last span is\n", o.GetP50MS, n.GetP50MS)
	b.WriteString("when swarmkit asked each node again, which the driver does not set: it is not a speed comparison.\n")
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
			GetP50MS: 1.25, GetP99MS: 8.5, BusyMS: 1400},
		naive:  stormResult{Tasks: 200, Secrets: 3, Gets: 600, GetsPerTaskSec: 1, ConjurRequests: 1400, SpanMS: 14019, MaxInFlight: 1, GetP50MS: 4.75, GetP99MS: 20, BusyMS: 3100},
		engine: "20.10.24", at: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), rttMS: 0.85,
	}
	got := renderStorm(d)
	for _, want := range []string{"| GetSecret calls received | 900 | 600 |", "| Conjur requests it sent | 310 | 1400 |",
		"m1 (old leader) 150, w1 150", "1.50 (conjur-swarm) and 1.00 (naive) times", "not exactly once",
		"at most 3 (conjur-swarm) and 1", "first to last Get 12846 ms with conjur-swarm and 14019 ms",
		"| **per-Get latency at the plugin, p50 / p99** | 1.25 / 8.50 ms | 4.75 / 20.00 ms |", "| driver busy time (sum of the Gets' durations) | 1400 ms | 3100 ms |",
		"| first to last Get (swarmkit pacing, not the driver's speed) | 12846 ms | 14019 ms |", "round trip from the host is 0.85 ms",
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
