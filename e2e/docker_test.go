package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
)

// namePrefix starts the name of every object the suite creates: plugins,
// secrets, services, stacks, images and temporary directories.
const namePrefix = "cse2e-"

// cmdTimeout bounds one docker CLI call (`docker plugin enable` alone waits
// up to about 10 s for the plugin's socket).
const cmdTimeout = 90 * time.Second

// waitTimeout bounds a poll for a state of the swarm (a task running, a task
// failed): the engine normally gets there in a few seconds.
const waitTimeout = 90 * time.Second

// pollEvery is how often a poll looks again.
const pollEvery = 500 * time.Millisecond

// run runs a command and returns its stdout; the error carries stderr.
func run(ctx context.Context, stdin io.Reader, name string, args ...string) (string, error) {
	return harness.Run(ctx, stdin, name, args...)
}

// docker runs the docker CLI with a bounded deadline.
func docker(args ...string) (string, error) {
	return dockerIn(nil, args...)
}

// dockerIn is docker with stdin (secret data is only ever passed this way).
func dockerIn(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := run(ctx, stdin, "docker", args...)
	return strings.TrimSpace(out), err
}

// mustDocker runs the docker CLI and fails the test when it fails.
func mustDocker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// poll calls check until it reports done or the deadline passes; then it
// fails the test with what, the last status check gave and diag's output.
func poll(t testing.TB, what string, timeout time.Duration, check func() (done bool, status string), diag func() string) {
	t.Helper()
	harness.Poll(t, what, timeout, pollEvery, check, diag)
}

// task is one line of `docker service ps --format '{{json .}}'`.
type task struct {
	ID           string `json:"ID"`
	Name         string `json:"Name"`
	DesiredState string `json:"DesiredState"`
	CurrentState string `json:"CurrentState"`
	Error        string `json:"Error"`
}

func (tk task) running() bool {
	return tk.DesiredState == "Running" && strings.HasPrefix(tk.CurrentState, "Running")
}

func (tk task) failed() bool {
	return strings.HasPrefix(tk.CurrentState, "Failed") || strings.HasPrefix(tk.CurrentState, "Rejected")
}

// serviceTasks lists every task of a service, old ones included.
func serviceTasks(service string) ([]task, error) {
	out, err := docker("service", "ps", "--no-trunc", "--format", "{{json .}}", service)
	if err != nil {
		return nil, err
	}
	var tasks []task
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var tk task
		if err := json.Unmarshal([]byte(line), &tk); err != nil {
			return nil, fmt.Errorf("docker service ps %s: line %q: %w", service, line, err)
		}
		tasks = append(tasks, tk)
	}
	return tasks, nil
}

// describeService is the diagnostic printed when a wait on a service fails.
func describeService(service string) string {
	out, err := docker("service", "ps", "--no-trunc", service)
	if err != nil {
		return err.Error()
	}
	return "docker service ps " + service + ":\n" + out
}

// frames is what the reader app printed: secret name -> exact bytes.
type frames struct {
	values  map[string][]byte
	missing map[string]string
	ready   bool
}

// parseFrames decodes the reader app's output (see testdata/reader).
func parseFrames(out string) (frames, error) {
	f := frames{values: map[string][]byte{}, missing: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.SplitN(strings.TrimSpace(line), " ", 3)
		switch fields[0] {
		case "CSE2E-READY":
			f.ready = true
		case "CSE2E-SECRET":
			if len(fields) != 3 {
				return f, fmt.Errorf("reader line %q: want 3 fields", line)
			}
			b, err := hex.DecodeString(fields[2])
			if err != nil {
				return f, fmt.Errorf("reader line for %s: %w", fields[1], err)
			}
			f.values[fields[1]] = b
		case "CSE2E-MISSING":
			if len(fields) == 3 {
				f.missing[fields[1]] = fields[2]
			}
		}
	}
	return f, nil
}

// taskFrames reads the reader app's output from the container of one task.
func taskFrames(taskID string) (frames, error) {
	cid, err := docker("ps", "-aq", "--no-trunc", "--filter", "label=com.docker.swarm.task.id="+taskID)
	if err != nil {
		return frames{}, err
	}
	if cid == "" {
		return frames{}, fmt.Errorf("task %s: no container yet", taskID)
	}
	cid = strings.Fields(cid)[0]
	out, err := docker("logs", cid)
	if err != nil {
		return frames{}, err
	}
	return parseFrames(out)
}

// waitReaders waits until want tasks of service are running and their reader
// app has printed its frames, and returns them by task ID. Tasks in skip are
// ignored (earlier tasks of the same service).
func waitReaders(t testing.TB, service string, want int, skip map[string]bool) map[string]frames {
	t.Helper()
	var got map[string]frames
	poll(t, fmt.Sprintf("%d running task(s) of %s with their secrets read", want, service), waitTimeout, func() (bool, string) {
		tasks, err := serviceTasks(service)
		if err != nil {
			return false, err.Error()
		}
		got = map[string]frames{}
		var states []string
		for _, tk := range tasks {
			states = append(states, tk.CurrentState+" "+tk.Error)
			if skip[tk.ID] || !tk.running() {
				continue
			}
			f, err := taskFrames(tk.ID)
			if err != nil || !f.ready {
				continue
			}
			got[tk.ID] = f
		}
		return len(got) >= want, strings.Join(states, "; ")
	}, func() string { return describeService(service) })
	return got
}

// waitTaskFailure waits until a task of service has failed and returns its
// error as `docker service ps` shows it.
func waitTaskFailure(t testing.TB, service string) string {
	t.Helper()
	var msg string
	poll(t, "a failed task of "+service, waitTimeout, func() (bool, string) {
		tasks, err := serviceTasks(service)
		if err != nil {
			return false, err.Error()
		}
		var states []string
		for _, tk := range tasks {
			states = append(states, tk.CurrentState)
			if tk.failed() && tk.Error != "" {
				msg = tk.Error
				return true, ""
			}
		}
		return false, strings.Join(states, "; ")
	}, func() string { return describeService(service) })
	return msg
}

// ensureSwarm makes this engine a swarm manager, initialising a single-node
// swarm on loopback when none is active. It returns why the suite must skip,
// or "".
func ensureSwarm() (skip string, err error) {
	state, err := docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
	if err != nil {
		return "", err
	}
	switch state {
	case "active true":
		return "", nil
	case "active false":
		return "this engine is a swarm worker, not a manager: the secret driver is only called on managers", nil
	case "inactive false":
		if _, err := docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"); err != nil {
			return "swarm mode unusable: " + err.Error(), nil
		}
		return "", nil
	default:
		return fmt.Sprintf("swarm state %q (pending or locked?): run `docker swarm init` or unlock it first", state), nil
	}
}

// sweep removes what earlier runs that crashed left behind: services (and the
// stacks they belong to), secrets, plugins and images named cse2e-..., and
// their temporary directories. Only call it while holding the run lock.
func sweep() error {
	var errs []error
	list := func(args ...string) []string {
		out, err := docker(args...)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		var names []string
		for _, n := range strings.Fields(out) {
			if strings.HasPrefix(n, namePrefix) {
				names = append(names, n)
			}
		}
		return names
	}
	if svcs := list("service", "ls", "--format", "{{.Name}}"); len(svcs) > 0 {
		if _, err := docker(append([]string{"service", "rm"}, svcs...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if err := waitContainersGone(namePrefix); err != nil {
		errs = append(errs, err)
	}
	if secrets := list("secret", "ls", "--format", "{{.Name}}"); len(secrets) > 0 {
		if _, err := docker(append([]string{"secret", "rm"}, secrets...)...); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range list("plugin", "ls", "--format", "{{.Name}}") {
		removePlugin(p)
	}
	if images := list("image", "ls", "--format", "{{.Repository}}:{{.Tag}}"); len(images) > 0 {
		if _, err := docker(append([]string{"image", "rm", "-f"}, images...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if nets := list("network", "ls", "--format", "{{.Name}}"); len(nets) > 0 {
		if _, err := docker(append([]string{"network", "rm"}, nets...)...); err != nil {
			errs = append(errs, err)
		}
	}
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), namePrefix+"*"))
	for _, dir := range old {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			errs = append(errs, os.RemoveAll(dir))
		}
	}
	return errors.Join(errs...)
}

// waitContainersGone waits until no swarm task container of a service whose
// name starts with prefix is left (removing a service stops its containers
// asynchronously; their images cannot be removed before).
func waitContainersGone(prefix string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := docker("ps", "-a", "--format", `{{.ID}} {{.Label "com.docker.swarm.service.name"}}`)
		if err != nil {
			return err
		}
		var left []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && strings.HasPrefix(f[1], prefix) {
				left = append(left, f[0])
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			_, err := docker(append([]string{"rm", "-f"}, left...)...)
			return err
		}
		time.Sleep(pollEvery)
	}
}

// removePlugin disables (forcibly) and removes a plugin; errors are ignored
// because it may be half-created.
func removePlugin(name string) {
	_, _ = docker("plugin", "disable", "-f", name)
	_, _ = docker("plugin", "rm", "-f", name)
}

// importImage turns a directory holding a static binary into an image with
// `docker import` (there is no registry) and returns its sha256: ID, which
// services must use with --no-resolve-image.
func importImage(dir, ref string, entrypoint []string) (string, error) {
	ep, err := json.Marshal(entrypoint)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	tarCmd := exec.CommandContext(ctx, "tar", "-C", dir, "-c", ".")
	tarCmd.Stdout = pw
	if err := tarCmd.Start(); err != nil {
		return "", err
	}
	go func() { pw.CloseWithError(tarCmd.Wait()) }()
	_, err = run(ctx, pr, "docker", "import", "-c", "ENTRYPOINT "+string(ep), "-", ref)
	pr.Close()
	if err != nil {
		return "", err
	}
	return docker("image", "inspect", "-f", "{{.Id}}", ref)
}

// daemonLog finds the plugin's log lines. A managed plugin's stdout and
// stderr go to the Docker daemon's own log, one line per plugin line tagged
// plugin=<plugin ID>: a file when dockerd's stderr is one (as here), or the
// journal of the docker unit.
type daemonLog struct {
	path    string    // dockerd's log file, or "" for the journal
	offset  int64     // file size when the run started
	since   time.Time // for the journal
	journal bool
}

// findDaemonLog locates the daemon's log; nil when neither a file nor the
// journal is readable.
func findDaemonLog() *daemonLog {
	pid := ""
	if b, err := os.ReadFile("/var/run/docker.pid"); err == nil {
		pid = strings.TrimSpace(string(b))
	}
	if pid == "" {
		procs, _ := filepath.Glob("/proc/[0-9]*/comm")
		for _, c := range procs {
			if b, err := os.ReadFile(c); err == nil && strings.TrimSpace(string(b)) == "dockerd" {
				pid = filepath.Base(filepath.Dir(c))
				break
			}
		}
	}
	if pid != "" {
		if target, err := os.Readlink(filepath.Join("/proc", pid, "fd", "2")); err == nil && filepath.IsAbs(target) {
			if fi, err := os.Stat(target); err == nil && fi.Mode().IsRegular() {
				return &daemonLog{path: target, offset: fi.Size()}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := run(ctx, nil, "journalctl", "-u", "docker", "-n", "1", "-o", "cat"); err == nil && strings.TrimSpace(out) != "" {
		return &daemonLog{journal: true, since: time.Now().Add(-time.Second)}
	}
	return nil
}

func (d *daemonLog) String() string {
	if d == nil {
		return "no daemon log found (dockerd's stderr is not a file and journalctl -u docker is empty)"
	}
	if d.journal {
		return "journalctl -u docker"
	}
	return d.path
}

// pluginLines returns the messages the plugin pluginID logged since the run
// started, unquoted (each is one of the plugin's own JSON log lines).
func (d *daemonLog) pluginLines(pluginID string) ([]string, error) {
	if d == nil {
		return nil, errors.New(d.String())
	}
	var raw []byte
	if d.journal {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := run(ctx, nil, "journalctl", "-u", "docker", "-o", "cat", "--since", "@"+strconv.FormatInt(d.since.Unix(), 10))
		if err != nil {
			return nil, err
		}
		raw = []byte(out)
	} else {
		f, err := os.Open(d.path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if _, err := f.Seek(d.offset, io.SeekStart); err != nil {
			return nil, err
		}
		if raw, err = io.ReadAll(f); err != nil {
			return nil, err
		}
	}
	tag := "plugin=" + pluginID
	var lines []string
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.Contains(line, tag) {
			continue
		}
		lines = append(lines, logMessage(line))
	}
	return lines, nil
}

// logMessage extracts and unquotes msg="..." from a logrus text line; it
// returns the line itself when there is none.
func logMessage(line string) string {
	i := strings.Index(line, ` msg="`)
	if i < 0 {
		return line
	}
	q, err := strconv.QuotedPrefix(line[i+len(" msg="):])
	if err != nil {
		return line
	}
	msg, err := strconv.Unquote(q)
	if err != nil {
		return line
	}
	return msg
}
