package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
)

// naiveName is the naive managed plugin of the storm comparison.
const naiveName = "csl/naive:latest"

// stormVariables are what the storm's three driver secrets name.
var stormVariables = []string{"apps/lab/v1", "apps/lab/v2", "apps/lab/v3"}

// get is one GetSecret a plugin answered: when it started and ended.
type get struct {
	start, end time.Time
	ok         bool
	task       string
	fromMemory bool // prefetched or from the value cache: no Conjur answer waited for
}

// stormResult is what one leader change cost at the new leader's plugin.
type stormResult struct {
	Tasks          int     `json:"tasks"`
	Secrets        int     `json:"secrets_per_task"`
	Gets           int     `json:"gets"`
	GetsPerTaskSec float64 `json:"gets_per_task_secret"`
	Failed         int     `json:"failed_gets"`
	ConjurRequests int64   `json:"conjur_requests"`
	// ByEndpoint is ConjurRequests by the Conjur endpoint they asked.
	ByEndpoint  map[string]int64 `json:"conjur_requests_by_endpoint"`
	SpanMS      int64            `json:"first_to_last_get_ms"` // swarmkit's pacing, not the driver's speed
	GetP50MS    float64          `json:"get_p50_ms"`           // per-Get latency at the plugin (its audit durations)
	GetP99MS    float64          `json:"get_p99_ms"`
	FromMemory  int              `json:"gets_from_memory"` // served from values prefetched for the task or the value cache
	FetchP50MS  float64          `json:"fetch_get_p50_ms"` // p50 of the other Gets, which waited for a Conjur answer
	BusyMS      int64            `json:"busy_ms"`          // the sum of the Gets' durations
	MaxInFlight int              `json:"max_in_flight"`
	ElectionMS  int64            `json:"leader_change_ms"`
	LoadAvg     string           `json:"load_avg"` // the machine's, over 1, 5 and 15 min, at the leader change
	// ByNode is the Gets for the tasks of each node ("m1 (old leader)").
	ByNode map[string]int `json:"gets_by_node"`

	newLead *node // where the Gets were measured
}

// ourGets reads the audit lines of our plugin on m since a time.
func (f *fixture) ourGets(m *node, since time.Time) ([]get, error) {
	lines, err := m.pluginLog(f.pluginID(m))
	if err != nil {
		return nil, err
	}
	var gs []get
	for _, l := range lines {
		msg := l.str("msg")
		if msg != "secret served" && msg != "secret denied" && msg != "secret not served" {
			continue
		}
		end := l.time()
		if end.Before(since) {
			continue
		}
		d, _ := l.fields["duration"].(float64) // seconds (zap's production encoder)
		prefetched, _ := l.fields["prefetched"].(bool)
		cached, _ := l.fields["cached"].(bool)
		gs = append(gs, get{start: end.Add(-time.Duration(d * float64(time.Second))), end: end, ok: msg == "secret served", task: l.str("task"),
			fromMemory: prefetched || cached})
	}
	return gs, nil
}

// naiveGets reads the naive plugin's lines on m since a time.
func (f *fixture) naiveGets(m *node, since time.Time) ([]get, error) {
	lines, err := m.pluginLog(f.naiveIDs[m])
	if err != nil {
		return nil, err
	}
	var gs []get
	for _, l := range lines {
		if l.str("msg") != "naive get" {
			continue
		}
		start, err1 := time.Parse(time.RFC3339Nano, l.str("start"))
		end, err2 := time.Parse(time.RFC3339Nano, l.str("end"))
		if err1 != nil || err2 != nil || start.Before(since) {
			continue
		}
		gs = append(gs, get{start: start, end: end, ok: l.str("err") == "", task: l.str("task")})
	}
	return gs, nil
}

// maxInFlight is the most Gets that overlapped.
func maxInFlight(gs []get) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var es []edge
	for _, g := range gs {
		es = append(es, edge{g.start, 1}, edge{g.end, -1})
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].at.Equal(es[j].at) {
			return es[i].delta < es[j].delta // an end before a start at the same instant
		}
		return es[i].at.Before(es[j].at)
	})
	cur, most := 0, 0
	for _, e := range es {
		cur += e.delta
		most = max(most, cur)
	}
	return most
}

// stormFigures is what the Gets gs at the new leader's plugin say: how many,
// for the tasks of which node, how many failed, their latency, busy time
// and span.
func (f *fixture) stormFigures(gs []get, taskNode map[string]string, lead, newLead *node, tasks, secrets int) stormResult {
	r := stormResult{Tasks: tasks, Secrets: secrets, Gets: len(gs), MaxInFlight: maxInFlight(gs), ByNode: map[string]int{}}
	for _, g := range gs {
		label := strings.TrimPrefix(taskNode[g.task], f.lab.id+"-")
		switch label {
		case lead.name:
			label += " (old leader)"
		case newLead.name:
			label += " (new leader)"
		case "":
			label = "unknown task"
		}
		r.ByNode[label]++
	}
	r.GetsPerTaskSec = float64(int(1000*float64(r.Gets)/float64(tasks*secrets))) / 1000
	if len(gs) > 0 {
		first, last := gs[0].start, gs[0].end
		for _, g := range gs {
			if g.start.Before(first) {
				first = g.start
			}
			if g.end.After(last) {
				last = g.end
			}
			if !g.ok {
				r.Failed++
			}
		}
		r.SpanMS = last.Sub(first).Milliseconds()
	}
	r.latencies(gs)
	return r
}

// latencies sets the per-Get figures: p50 and p99 of the Gets' durations
// at the plugin, their sum (the driver's busy time), how many were served
// from memory and the p50 of the others.
func (r *stormResult) latencies(gs []get) {
	var all, fetched []time.Duration
	var busy time.Duration
	for _, g := range gs {
		d := g.end.Sub(g.start)
		all = append(all, d)
		busy += d
		if g.fromMemory {
			r.FromMemory++
		} else {
			fetched = append(fetched, d)
		}
	}
	r.GetP50MS, r.GetP99MS, r.BusyMS = quantileMS(all, 0.50), quantileMS(all, 0.99), busy.Milliseconds()
	r.FetchP50MS = quantileMS(fetched, 0.50)
}

// quantileMS is the q quantile of ds in milliseconds (0 when ds is empty);
// it sorts ds.
func quantileMS(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
}

// conjurRTT is the lab Conjur's round trip for what a plugin's fetch asks,
// from manager m's network namespace (the path the plugin's requests take:
// its veth, the lab's bridge, the host's veth) and from a process of its
// own, as the plugin is: the p50 of rttReads authenticated reads as the
// plugin's host, one after another, over one kept-alive TLS connection
// (e2e/cluster/testdata/rtt). It is a fetch's floor, without the plugin.
// variables names one variable (a single read) or several (the batch
// request the plugin sends).
func (f *fixture) conjurRTT(t *testing.T, m *node, variables ...string) time.Duration {
	t.Helper()
	bin := filepath.Join(f.dir("rtt"), "rtt")
	if _, err := os.Stat(bin); err != nil {
		if err := f.goBuild(bin, "./e2e/cluster/testdata/rtt", "-s -w"); err != nil {
			t.Fatal(err)
		}
	}
	key, err := f.conjur.APIKey("host:swarm/conjur-plugin")
	if err != nil {
		t.Fatalf("timing the lab Conjur's round trip: %v", err)
	}
	_, ca, _ := hostDirs(m)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := harness.Run(ctx, strings.NewReader(key), "nsenter", "--net="+filepath.Join(netnsDir, m.netns), bin,
		"-url", f.conjurL.URL, "-account", f.conjur.Account(), "-login", pluginLogin, "-ca-file", filepath.Join(ca, "conjur.pem"),
		"-variables", strings.Join(variables, ","), "-n", itoa(rttReads))
	if err != nil {
		t.Fatalf("timing the lab Conjur's round trip from %s: %v", m.name, err)
	}
	var ds []time.Duration
	for _, f := range strings.Fields(out) {
		ns, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("timing the lab Conjur's round trip from %s: %q is not a duration in ns", m.name, f)
		}
		ds = append(ds, time.Duration(ns))
	}
	if len(ds) != rttReads {
		t.Fatalf("timing the lab Conjur's round trip from %s: %d durations, want %d", m.name, len(ds), rttReads)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// rttReads is how many reads conjurRTT times.
const rttReads = 50

// conjurRequests is the requests both Conjur servers answered so far, by
// endpoint.
func (f *fixture) conjurRequests() map[string]int64 {
	n := map[string]int64{}
	for _, s := range []map[string]int64{f.conjur.Counts(), f.follower.Counts()} {
		for ep, c := range s {
			n[ep] += c
		}
	}
	return n
}

// requestsSince is the requests counted in now and not in before, in all
// and by endpoint.
func requestsSince(before, now map[string]int64) (int64, map[string]int64) {
	var all int64
	by := map[string]int64{}
	for ep, c := range now {
		if d := c - before[ep]; d > 0 {
			by[ep], all = d, all+d
		}
	}
	return all, by
}

// installNaive builds the naive driver as a managed plugin and installs it
// on every manager, against the Conjur leader.
func (f *fixture) installNaive(t *testing.T) {
	t.Helper()
	dir := f.dir("naive-plugin")
	for _, d := range []string{"rootfs/run/docker/plugins", "rootfs/etc/naive"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.goBuild(filepath.Join(dir, "rootfs", "naive"), "./e2e/cluster/testdata/naive", "-s -w"); err != nil {
		t.Fatal(err)
	}
	identity := f.dir("naive-identity")
	key, err := f.conjur.APIKey("host:swarm/conjur-plugin")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(identity, "key"), []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(identity, "ca.pem"), f.conjurL.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := map[string]any{
		"description": "naive secret driver: authenticate and fetch per Get (lab storm comparison only)",
		"entrypoint": []string{"/naive", "-url", f.conjurL.URL, "-account", f.conjur.Account(), "-login", pluginLogin,
			"-key-file", "/etc/naive/key", "-ca-file", "/etc/naive/ca.pem"},
		"workdir":   "/",
		"interface": map[string]any{"types": []string{"docker.secretprovider/1.0"}, "socket": "naive.sock"},
		"network":   map[string]string{"type": "host"},
		"linux":     map[string]any{"capabilities": []string{}},
		"mounts": []map[string]any{{"name": "naive", "source": identity, "destination": "/etc/naive",
			"type": "bind", "options": []string{"rbind", "ro"}}},
	}
	b, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range f.lab.managers() {
		m.must(t, "plugin", "create", naiveName, dir)
		m.must(t, "plugin", "enable", naiveName)
		f.mu.Lock()
		f.naiveIDs[m] = m.must(t, "plugin", "inspect", "-f", "{{.Id}}", naiveName)
		f.mu.Unlock()
	}
}

// storm runs tasks tasks of one service with three driver secrets, forces
// one leader change (the leader is demoted, which hands leadership to
// another manager) and measures the burst at the new leader's plugin.
func (f *fixture) storm(t *testing.T, kind, driver string, tasks int, gets func(*node, time.Time) ([]get, error)) stormResult {
	t.Helper()
	lead := f.lab.waitLeader(t, nil)
	var names []string
	for i, v := range stormVariables {
		name := fmt.Sprintf("storm-%s-%d", kind, i+1)
		f.secret(t, lead, driver, name, v)
		names = append(names, name)
	}
	svc := "storm-" + kind
	args := []string{"service", "create", "-d", "--name", svc, "--label", labStack, "--replicas", itoa(tasks)}
	for _, n := range names {
		args = append(args, "--secret", n)
	}
	args = append(args, "--no-resolve-image", "--network", "host", f.readerImage)
	lead.must(t, append(args, names...)...)
	removed := false
	t.Cleanup(func() {
		if !removed {
			f.removeService(t, svc, names...)
		}
	})
	startAt := time.Now()
	poll(t, fmt.Sprintf("%d running tasks of %s", tasks, svc), 10*time.Minute, func() (bool, string) {
		n := f.runningTasks(svc)
		return n == tasks, fmt.Sprintf("%d running", n)
	}, func() string { out, _ := lead.docker("service", "ps", svc); return out })
	t.Logf("%s: %d tasks running after %s", kind, tasks, time.Since(startAt).Round(time.Millisecond))

	taskNode := map[string]string{}
	ts, err := lead.tasks(svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range ts {
		taskNode[tk.id] = tk.node
	}

	var other *node
	for _, m := range f.lab.managers() {
		if m != lead {
			other = m
			break
		}
	}
	before := f.conjurRequests()
	load := loadAvg()
	changeAt := time.Now()
	other.must(t, "node", "demote", lead.id)
	newLead := f.lab.waitLeader(t, lead)
	elected := time.Since(changeAt)

	// The burst is over when the new leader's plugin has received no Get
	// for ten seconds (or none came within a minute): a node whose session
	// moves late still counts.
	var gs []get
	lastCount, lastChange := -1, time.Now()
	poll(t, "the end of the Get burst at "+newLead.name, 5*time.Minute, func() (bool, string) {
		var err error
		if gs, err = gets(newLead, changeAt); err != nil {
			return false, err.Error()
		}
		if len(gs) != lastCount {
			lastCount, lastChange = len(gs), time.Now()
		}
		quiet := time.Since(lastChange)
		return (len(gs) > 0 && quiet > 10*time.Second) || (len(gs) == 0 && quiet > time.Minute), fmt.Sprintf("%d Gets", len(gs))
	}, nil)
	r := f.stormFigures(gs, taskNode, lead, newLead, tasks, len(names))
	r.ConjurRequests, r.ByEndpoint = requestsSince(before, f.conjurRequests())
	r.ElectionMS, r.LoadAvg, r.newLead = elected.Milliseconds(), load, newLead
	t.Logf("%s (load average %s): leader %s -> %s in %s; at %s's plugin: %d Gets (%.3f per task and secret, %d failed, %d from memory), per Get p50 %.3f ms p99 %.3f ms, p50 of those that waited for Conjur %.3f ms, busy %d ms, %d Conjur requests, first to last Get (swarmkit pacing) %d ms, at most %d in flight; Gets by node of the task: %v",
		kind, r.LoadAvg, lead.name, newLead.name, elected.Round(time.Millisecond), newLead.name, r.Gets, r.GetsPerTaskSec, r.Failed, r.FromMemory, r.GetP50MS, r.GetP99MS, r.FetchP50MS, r.BusyMS, r.ConjurRequests, r.SpanMS, r.MaxInFlight, r.ByNode)

	other.must(t, "node", "promote", lead.id)
	f.waitManagers(t)
	// Gone before the next storm: its leader change would re-ask this
	// service's secrets too, and the other driver's Conjur requests and CPU
	// would count in that storm's figures.
	f.removeService(t, svc, names...)
	removed = true
	return r
}

// waitManagers waits until every manager is Leader or Reachable.
func (f *fixture) waitManagers(t *testing.T) {
	t.Helper()
	poll(t, "every manager reachable", 3*time.Minute, f.lab.managersReachable, nil)
}

// removeService removes a service and its secrets and waits until no
// container of it is left on any node.
func (f *fixture) removeService(t *testing.T, svc string, secrets ...string) {
	for _, m := range f.lab.managers() {
		if _, err := m.docker("service", "rm", svc); err == nil {
			break
		}
	}
	poll(t, "the containers of "+svc+" gone", 5*time.Minute, func() (bool, string) {
		left := 0
		for _, n := range f.lab.nodes {
			out, err := n.docker("ps", "-aq", "--filter", "label=com.docker.swarm.service.name="+svc)
			if err != nil {
				return false, err.Error()
			}
			left += len(strings.Fields(out))
		}
		return left == 0, fmt.Sprintf("%d containers left", left)
	}, nil)
	for _, m := range f.lab.managers() {
		if _, err := m.docker(append([]string{"secret", "rm"}, secrets...)...); err == nil {
			break
		}
	}
}

// Scenario 6: the real leader-change storm. tasks tasks with three driver
// secrets each run over the four nodes; one leader change; the new leader's
// plugin's Gets, the Conjur requests it causes and the burst's length, for
// conjur-swarm and for a naive managed plugin.
func TestLeaderChangeStorm(t *testing.T) {
	f := getFixture(t)
	for _, m := range f.lab.managers() {
		f.waitHandoff(t, m)
	}
	f.installNaive(t)
	ours := f.storm(t, "ours", pluginName, *stormTasks, f.ourGets)
	// After ours' burst, from the node where its Gets were measured: one
	// variable, and the batch of the storm's variables a task's first Get
	// sends with prefetch on.
	rtt := f.conjurRTT(t, ours.newLead, "apps/lab/v1")
	batchRTT := f.conjurRTT(t, ours.newLead, stormVariables...)
	naive := f.storm(t, "naive", naiveName, *stormTasks, f.naiveGets)
	engine, _ := f.lab.nodes[0].docker("version", "--format", "{{.Server.Version}}")
	stormForDoc = &stormDoc{ours: ours, naive: naive, engine: engine, at: time.Now(), rttMS: float64(rtt.Microseconds()) / 1000,
		batchRTTMS: float64(batchRTT.Microseconds()) / 1000, rttFrom: ours.newLead.name}
	t.Logf("the lab Conjur's round trip from %s: p50 %.3f ms (one variable), %.3f ms (batch of %d)",
		ours.newLead.name, stormForDoc.rttMS, stormForDoc.batchRTTMS, len(stormVariables))
	record("storm_conjur_rtt_ms", stormForDoc.rttMS)
	record("storm_conjur_batch_rtt_ms", stormForDoc.batchRTTMS)
	record("storm_tasks", *stormTasks)
	record("storm_gets", ours.Gets)
	record("storm_gets_per_task_secret", ours.GetsPerTaskSec)
	for kind, r := range map[string]stormResult{"ours": ours, "naive": naive} {
		for key, v := range map[string]any{"gets": r.Gets, "conjur_requests": r.ConjurRequests, "pacing_ms": r.SpanMS,
			"get_p50_ms": r.GetP50MS, "get_p99_ms": r.GetP99MS, "busy_ms": r.BusyMS,
			"gets_from_memory": r.FromMemory, "fetch_get_p50_ms": r.FetchP50MS, "load_avg": r.LoadAvg,
			"max_in_flight": r.MaxInFlight, "failed_gets": r.Failed, "gets_by_node": r.ByNode, "conjur_requests_by_endpoint": r.ByEndpoint} {
			record("storm_"+kind+"_"+key, v)
		}
	}
	for _, r := range []stormResult{ours, naive} {
		if r.Gets == 0 {
			t.Errorf("the new leader's plugin received no Get after the leader change (%+v)", r)
		}
	}
	if ours.Failed != 0 {
		t.Errorf("conjur-swarm failed %d of the burst's Gets", ours.Failed)
	}
}

// loadAvg is the machine's load average over 1, 5 and 15 minutes
// (/proc/loadavg), for the figures' context.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
