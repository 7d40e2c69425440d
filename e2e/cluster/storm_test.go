package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// naiveName is the naive managed plugin of the storm comparison.
const naiveName = "csl/naive:latest"

// get is one GetSecret a plugin answered: when it started and ended.
type get struct {
	start, end time.Time
	ok         bool
	task       string
}

// stormResult is what one leader change cost at the new leader's plugin.
type stormResult struct {
	Tasks          int     `json:"tasks"`
	Secrets        int     `json:"secrets_per_task"`
	Gets           int     `json:"gets"`
	GetsPerTaskSec float64 `json:"gets_per_task_secret"`
	Failed         int     `json:"failed_gets"`
	ConjurRequests int64   `json:"conjur_requests"`
	SpanMS         int64   `json:"first_to_last_get_ms"` // swarmkit's pacing, not the driver's speed
	GetP50MS       float64 `json:"get_p50_ms"`           // per-Get latency at the plugin (its audit durations)
	GetP99MS       float64 `json:"get_p99_ms"`
	BusyMS         int64   `json:"busy_ms"` // the sum of the Gets' durations
	MaxInFlight    int     `json:"max_in_flight"`
	ElectionMS     int64   `json:"leader_change_ms"`
	// ByNode is the Gets for the tasks of each node ("m1 (old leader)").
	ByNode map[string]int `json:"gets_by_node"`
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
		gs = append(gs, get{start: end.Add(-time.Duration(d * float64(time.Second))), end: end, ok: msg == "secret served", task: l.str("task")})
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
// at the plugin, and their sum (the driver's busy time).
func (r *stormResult) latencies(gs []get) {
	if len(gs) == 0 {
		return
	}
	ds := make([]time.Duration, len(gs))
	var busy time.Duration
	for i, g := range gs {
		ds[i] = g.end.Sub(g.start)
		busy += ds[i]
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	r.GetP50MS, r.GetP99MS, r.BusyMS = at(0.50), at(0.99), busy.Milliseconds()
}

// conjurRTT is the lab Conjur's round trip from this host for what a
// plugin's fetch asks: the p50 of 20 authenticated reads of one variable, as
// the plugin's host, over one kept-alive TLS connection (a fetch's floor,
// without the plugin).
func (f *fixture) conjurRTT(t *testing.T) time.Duration {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.conjurL.CAPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	key, err := f.conjur.APIKey("host:swarm/conjur-plugin")
	if err != nil {
		t.Fatalf("timing the lab Conjur's round trip: %v", err)
	}
	acct := f.conjur.Account()
	resp, err := c.Post(f.conjurL.URL+"/authn/"+acct+"/"+url.PathEscape(pluginLogin)+"/authenticate", "text/plain", strings.NewReader(key))
	if err != nil {
		t.Fatalf("timing the lab Conjur's round trip: authenticating: %v", err)
	}
	token, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("timing the lab Conjur's round trip: authenticating answered %d", resp.StatusCode)
	}
	auth := `Token token="` + base64.StdEncoding.EncodeToString(token) + `"`
	var ds []time.Duration
	for i := range 21 {
		req, err := http.NewRequest(http.MethodGet, f.conjurL.URL+"/secrets/"+acct+"/variable/"+url.PathEscape("apps/lab/v1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		t0 := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("timing the lab Conjur's round trip: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("timing the lab Conjur's round trip: reading apps/lab/v1 answered %d", resp.StatusCode)
		}
		if i > 0 { // the first one also connects
			ds = append(ds, time.Since(t0))
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// conjurRequests is every request both Conjur servers answered so far.
func (f *fixture) conjurRequests() int64 {
	var n int64
	for _, s := range []map[string]int64{f.conjur.Counts(), f.follower.Counts()} {
		for _, c := range s {
			n += c
		}
	}
	return n
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
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("storm-%s-%d", kind, i)
		f.secret(t, lead, driver, name, fmt.Sprintf("apps/lab/v%d", i))
		names = append(names, name)
	}
	svc := "storm-" + kind
	args := []string{"service", "create", "-d", "--name", svc, "--label", labStack, "--replicas", itoa(tasks)}
	for _, n := range names {
		args = append(args, "--secret", n)
	}
	args = append(args, "--no-resolve-image", "--network", "host", f.readerImage)
	lead.must(t, append(args, names...)...)
	t.Cleanup(func() { f.removeService(t, svc, names...) })
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
	r.ConjurRequests, r.ElectionMS = f.conjurRequests()-before, elected.Milliseconds()
	t.Logf("%s: leader %s -> %s in %s; at %s's plugin: %d Gets (%.3f per task and secret, %d failed), per Get p50 %.2f ms p99 %.2f ms, busy %d ms, %d Conjur requests, first to last Get (swarmkit pacing) %d ms, at most %d in flight; Gets by node of the task: %v",
		kind, lead.name, newLead.name, elected.Round(time.Millisecond), newLead.name, r.Gets, r.GetsPerTaskSec, r.Failed, r.GetP50MS, r.GetP99MS, r.BusyMS, r.ConjurRequests, r.SpanMS, r.MaxInFlight, r.ByNode)

	other.must(t, "node", "promote", lead.id)
	f.waitManagers(t)
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
	rtt := f.conjurRTT(t)
	ours := f.storm(t, "ours", pluginName, *stormTasks, f.ourGets)
	naive := f.storm(t, "naive", naiveName, *stormTasks, f.naiveGets)
	engine, _ := f.lab.nodes[0].docker("version", "--format", "{{.Server.Version}}")
	stormForDoc = &stormDoc{ours: ours, naive: naive, engine: engine, at: time.Now(), rttMS: float64(rtt.Microseconds()) / 1000}
	record("storm_conjur_rtt_ms", stormForDoc.rttMS)
	record("storm_tasks", *stormTasks)
	record("storm_gets", ours.Gets)
	record("storm_gets_per_task_secret", ours.GetsPerTaskSec)
	for kind, r := range map[string]stormResult{"ours": ours, "naive": naive} {
		for key, v := range map[string]any{"gets": r.Gets, "conjur_requests": r.ConjurRequests, "pacing_ms": r.SpanMS,
			"get_p50_ms": r.GetP50MS, "get_p99_ms": r.GetP99MS, "busy_ms": r.BusyMS,
			"max_in_flight": r.MaxInFlight, "failed_gets": r.Failed, "gets_by_node": r.ByNode} {
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
