package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
)

// cmdTimeout bounds one docker CLI call.
const cmdTimeout = 90 * time.Second

// pollEvery is how often a wait looks again.
const pollEvery = 250 * time.Millisecond

// docker runs the docker CLI against this node's daemon.
func (n *node) docker(args ...string) (string, error) {
	return n.dockerIn(nil, args...)
}

// dockerIn is docker with stdin (secret data is only passed this way).
// A swarm object update (node demote or promote, service update) that
// races another change of the same object, e.g. a restarted node reporting
// its status, fails "update out of sequence"; the CLI reads the object
// again on each call, so it is run again, a few times (stdin-less calls only).
func (n *node) dockerIn(stdin io.Reader, args ...string) (string, error) {
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		out, err := harness.Run(ctx, stdin, "docker", append([]string{"-H", "unix://" + n.sock}, args...)...)
		cancel()
		if err != nil && stdin == nil && attempt < 5 && strings.Contains(out+err.Error(), "update out of sequence") {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
			continue
		}
		if err != nil {
			err = fmt.Errorf("node %s: %w", n.name, err)
		}
		return strings.TrimSpace(out), err
	}
}

// must is docker that fails the test on error.
func (n *node) must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// formSwarm makes the first node a swarm's first manager and joins the
// others, managers first.
func (l *lab) formSwarm() error {
	first := l.nodes[0]
	if _, err := first.docker("swarm", "init", "--advertise-addr", first.ip, "--listen-addr", first.ip+":2377"); err != nil {
		return err
	}
	tokens := map[bool]string{}
	for _, manager := range []bool{true, false} {
		role := map[bool]string{true: "manager", false: "worker"}[manager]
		tok, err := first.docker("swarm", "join-token", "-q", role)
		if err != nil {
			return err
		}
		tokens[manager] = tok
	}
	for _, n := range l.nodes[1:] {
		if _, err := n.docker("swarm", "join", "--token", tokens[n.manager], "--advertise-addr", n.ip,
			"--listen-addr", n.ip+":2377", first.ip+":2377"); err != nil {
			return err
		}
	}
	for _, n := range l.nodes {
		id, err := n.docker("info", "--format", "{{.Swarm.NodeID}}")
		if err != nil {
			return err
		}
		n.id = id
	}
	return nil
}

func (l *lab) managers() []*node {
	var ms []*node
	for _, n := range l.nodes {
		if n.manager {
			ms = append(ms, n)
		}
	}
	return ms
}

// byID is the node with swarm node ID id.
func (l *lab) byID(id string) *node {
	for _, n := range l.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// nodeRow is one line of `docker node ls --format '{{json .}}'`.
type nodeRow struct {
	ID            string `json:"ID"`
	Status        string `json:"Status"`
	ManagerStatus string `json:"ManagerStatus"`
}

// leader asks the managers in turn (skipping except) which node leads,
// and returns it with every node's row as that manager sees it.
func (l *lab) leader(except *node) (*node, []nodeRow, error) {
	var errs []error
	for _, m := range l.managers() {
		if m == except {
			continue
		}
		out, err := m.docker("node", "ls", "--format", "{{json .}}")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var rows []nodeRow
		var lead *node
		for _, line := range strings.Split(out, "\n") {
			var r nodeRow
			if json.Unmarshal([]byte(line), &r) != nil {
				continue
			}
			rows = append(rows, r)
			if r.ManagerStatus == "Leader" {
				lead = l.byID(r.ID)
			}
		}
		if lead != nil && lead != except {
			return lead, rows, nil
		}
		errs = append(errs, fmt.Errorf("node %s: no leader among %+v", m.name, rows))
	}
	return nil, nil, errors.Join(errs...)
}

// waitLeader waits until a manager other than except leads and every node
// but down is Ready, and returns the leader.
func (l *lab) waitLeader(t testing.TB, except *node, down ...*node) *node {
	t.Helper()
	var lead *node
	poll(t, leaderWait(except), 3*time.Minute, func() (bool, string) {
		var status string
		lead, status = l.leaderReady(except, down...)
		return lead != nil, status
	}, nil)
	return lead
}

func leaderWait(except *node) string {
	return "a swarm leader other than " + nodeName(except) + " with every live node ready"
}

// leaderReady returns the leader when a manager other than except leads
// and every node but down is Ready; otherwise nil and what is missing.
func (l *lab) leaderReady(except *node, down ...*node) (*node, string) {
	lead, rows, err := l.leader(except)
	if err != nil {
		return nil, err.Error()
	}
	for _, r := range rows {
		n := l.byID(r.ID)
		skip := false
		for _, d := range down {
			skip = skip || d == n
		}
		if !skip && r.Status != "Ready" {
			return nil, fmt.Sprintf("node %s is %s", nodeName(n), r.Status)
		}
	}
	return lead, ""
}

// managersReachable reports whether every manager is Leader or Reachable.
func (l *lab) managersReachable() (bool, string) {
	ld, rows, err := l.leader(nil)
	if err != nil || ld == nil {
		return false, fmt.Sprint(err)
	}
	ok := 0
	for _, r := range rows {
		if r.ManagerStatus == "Leader" || r.ManagerStatus == "Reachable" {
			ok++
		}
	}
	return ok == len(l.managers()), fmt.Sprintf("%+v", rows)
}

func nodeName(n *node) string {
	if n == nil {
		return "(none)"
	}
	return n.name
}

// poll waits for check (see harness.Poll).
func poll(t testing.TB, what string, timeout time.Duration, check func() (done bool, status string), diag func() string) {
	t.Helper()
	harness.Poll(t, what, timeout, pollEvery, check, diag)
}

// task is one task of a service as `docker service ps` shows it.
type task struct {
	id, node, state, err string
}

// failed reports a task the engine gave up on (Failed or Rejected).
func (tk task) failed() bool {
	state, _, _ := strings.Cut(tk.state, " ")
	return state == "Failed" || state == "Rejected"
}

// tasks lists every task of a service, old ones included, as manager m sees
// them.
func (m *node) tasks(service string) ([]task, error) {
	out, err := m.docker("service", "ps", "--no-trunc", "--format", "{{.ID}}\t{{.Node}}\t{{.CurrentState}}\t{{.Error}}", service)
	if err != nil {
		return nil, err
	}
	var ts []task
	for _, line := range strings.Split(out, "\n") {
		// The last line's empty error went with the output's trailing space.
		f := append(strings.SplitN(line, "\t", 4), "")
		if len(f) < 4 {
			continue
		}
		ts = append(ts, task{id: f[0], node: f[1], state: f[2], err: f[3]})
	}
	return ts, nil
}

// readerOutput is what the reader app of one task printed: secret name to
// exact bytes, and whether it got to the end.
type readerOutput struct {
	values map[string][]byte
	done   bool
}

// parseReader decodes the reader app's lines (e2e/testdata/reader):
// "CSE2E-SECRET <name> <hex>", "CSE2E-MISSING <name> <err>", "CSE2E-READY".
func parseReader(out string) (readerOutput, error) {
	r := readerOutput{values: map[string][]byte{}}
	for _, line := range strings.Split(out, "\n") {
		kind, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch kind {
		case "CSE2E-READY":
			r.done = true
		case "CSE2E-SECRET":
			name, hexValue, ok := strings.Cut(rest, " ")
			if !ok {
				return r, fmt.Errorf("reader line %q: want a name and a value", line)
			}
			b, err := hex.DecodeString(hexValue)
			if err != nil {
				return r, fmt.Errorf("reader line for %s: %w", name, err)
			}
			r.values[name] = b
		}
	}
	return r, nil
}

// containerOutputs reads the reader output of every container of a
// service on this node, by task ID.
func (n *node) containerOutputs(service string) (map[string]readerOutput, error) {
	out, err := n.docker("ps", "-a", "--no-trunc", "--filter", "label=com.docker.swarm.service.name="+service,
		"--format", `{{.ID}} {{.Label "com.docker.swarm.task.id"}}`)
	if err != nil {
		return nil, err
	}
	got := map[string]readerOutput{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		logs, err := n.docker("logs", f[0])
		if err != nil {
			continue // removed meanwhile
		}
		r, err := parseReader(logs)
		if err != nil {
			return nil, err
		}
		got[f[1]] = r
	}
	return got, nil
}

// pluginLogLine is one JSON line the plugin logged, as the node's dockerd
// log carries it (msg="<the line, quoted>" plugin=<plugin ID>).
type pluginLogLine struct {
	raw    string
	fields map[string]any
}

func (p pluginLogLine) str(key string) string {
	s, _ := p.fields[key].(string)
	return s
}

// time is the line's "ts" (ISO 8601), zero when absent.
func (p pluginLogLine) time() time.Time {
	ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", p.str("ts"))
	if err != nil {
		return time.Time{}
	}
	return ts
}

// pluginLog returns the lines plugin pluginID logged on this node so far.
func (n *node) pluginLog(pluginID string) ([]pluginLogLine, error) {
	b, err := os.ReadFile(filepath.Join(n.dir, "dockerd.log"))
	if err != nil {
		return nil, err
	}
	tag := "plugin=" + pluginID
	var lines []pluginLogLine
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, tag) {
			continue
		}
		msg := logMessage(line)
		pl := pluginLogLine{raw: msg}
		_ = json.Unmarshal([]byte(msg), &pl.fields)
		lines = append(lines, pl)
	}
	return lines, nil
}

// logMessage extracts and unquotes msg="..." from a logrus text line; it
// returns the line itself when there is none.
func logMessage(line string) string {
	_, after, ok := strings.Cut(line, ` msg=`)
	if !ok {
		return line
	}
	if q, err := strconv.QuotedPrefix(after); err == nil {
		if msg, err := strconv.Unquote(q); err == nil {
			return msg
		}
	}
	return line
}
