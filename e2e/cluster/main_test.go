package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

var (
	require    = flag.Bool("cluster.require", false, "fail instead of skipping when this machine cannot run the lab (make e2e-cluster)")
	stormTasks = flag.Int("cluster.storm-tasks", 50, "tasks of the leader-change storm (3 driver secrets each); make e2e-cluster runs 200, make test this smaller default to stay well under its 10m package timeout")
	lockWait   = flag.Duration("cluster.lock-wait", 2*time.Minute, "how long to wait for another lab run to finish before skipping (make test runs packages under a 10m timeout)")
)

// The plugin as docs/install.md installs it, and its identity.
const (
	pluginName   = "cyberark/conjur:latest"
	pluginLogin  = "host/swarm/conjur-plugin"
	managers     = 3
	workers      = 1
	labVariables = 8 // apps/lab/v1..v8, on both Conjur servers
)

var (
	skipReason string

	fixOnce sync.Once
	theFix  *fixture
	fixErr  error

	resultsMu sync.Mutex
	results   = map[string]any{"managers": managers, "workers": workers}
)

// record keeps a figure for the CLUSTER line.
func record(key string, v any) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results[key] = v
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) int {
	switch {
	case testing.Short():
		skipReason = "-short given (the lab starts four dockerd)"
	default:
		skipReason = labUsable()
	}
	if skipReason == "" {
		unlock, err := lockLab(*lockWait)
		if err != nil {
			skipReason = err.Error()
		} else {
			defer unlock()
			if err := sweepStale(); err != nil {
				fmt.Fprintln(os.Stderr, "cluster: removing stale labs (continuing):", err)
			}
		}
	}
	if skipReason != "" {
		fmt.Fprintln(os.Stderr, "cluster: skipping:", skipReason)
		record("skipped", skipReason)
	}
	code := m.Run()
	if theFix != nil {
		start := time.Now()
		if err := theFix.close(); err != nil {
			fmt.Fprintln(os.Stderr, "cluster: teardown:", err)
			code = 1
		}
		fmt.Fprintf(os.Stderr, "cluster: teardown took %s\n", time.Since(start).Round(time.Millisecond))
	}
	if err := writeDoc(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster: writing the storm section:", err)
		code = 1
	}
	if skipReason != "" && (*require || harness.InCI()) && !testing.Short() {
		code = 1
	}
	resultsMu.Lock()
	line, _ := json.Marshal(results)
	resultsMu.Unlock()
	fmt.Printf("CLUSTER %s\n", line)
	return code
}

// fixture is what every scenario shares: the lab, the Conjur-compatible
// servers, the images and the plugin installed on every manager.
type fixture struct {
	lab  *lab
	root string // repository root
	work string // lab.dir/work
	bin  string // conjur-swarm built for the host

	readerImage string // same sha256: ID on every node (docker save | load)
	agentImage  string

	conjur       *conjurdev.Server // the leader
	conjurL      *conjurdev.Listener
	follower     *conjurdev.Server // read-only, same data
	followerL    *conjurdev.Listener
	values       map[string][]byte // apps/lab/vN -> value
	pluginIDs    map[*node]string
	naiveIDs     map[*node]string
	closers      []func()
	seq          int
	mu           sync.Mutex
	agentService string
	broken       string // why the lab cannot serve another scenario (see restore)
}

// needLab skips (fails under CI=true or -cluster.require) when the machine
// cannot run the lab.
func needLab(t *testing.T) {
	t.Helper()
	switch {
	case testing.Short():
		t.Skip("cluster lab skipped: " + skipReason)
	case skipReason != "":
		harness.Unavailable(t, "the cluster lab", skipReason)
	}
}

// getFixture skips when the machine cannot run the lab, builds the shared
// fixture on first use and fails the test when that failed.
func getFixture(t *testing.T) *fixture {
	t.Helper()
	needLab(t)
	fixOnce.Do(func() {
		start := time.Now()
		theFix = &fixture{values: map[string][]byte{}, pluginIDs: map[*node]string{}, naiveIDs: map[*node]string{}}
		fixErr = theFix.setup()
		fmt.Fprintf(os.Stderr, "cluster: setup took %s\n", time.Since(start).Round(time.Millisecond))
		record("setup_s", round1(time.Since(start).Seconds()))
	})
	if fixErr != nil {
		t.Fatalf("cluster setup: %v", fixErr)
	}
	if reason := theFix.unusable(); reason != "" {
		t.Fatalf("the lab is unusable: %s", reason)
	}
	t.Cleanup(func() {
		if t.Failed() {
			theFix.restore(t.Name())
		}
	})
	return theFix
}

func (f *fixture) onClose(fn func()) { f.closers = append(f.closers, fn) }

func (f *fixture) close() error {
	for i := len(f.closers) - 1; i >= 0; i-- {
		f.closers[i]()
	}
	if f.lab == nil {
		return nil
	}
	return f.lab.close()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cluster: %s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func (f *fixture) setup() (err error) {
	if f.root, err = filepath.Abs("../.."); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(f.root, "go.mod")); err != nil {
		return fmt.Errorf("repository root %s: %w", f.root, err)
	}
	logf("starting %d managers and %d worker", managers, workers)
	if f.lab, err = newLab(managers, workers, logf); err != nil {
		return err
	}
	f.work = filepath.Join(f.lab.dir, "work")
	if err := os.Mkdir(f.work, 0o700); err != nil {
		return err
	}
	if err := f.lab.formSwarm(); err != nil {
		return err
	}
	logf("swarm formed on %s.0/24; building", f.lab.subnet)
	if err := f.buildImages(); err != nil {
		return err
	}
	if err := f.startConjur(); err != nil {
		return err
	}
	logf("conjur at %s and %s; installing the plugin on every manager", f.conjurL.URL, f.followerL.URL)
	if err := f.installPlugins(); err != nil {
		return err
	}
	return f.startAgent()
}

// goBuild builds a static binary of pkg (relative to the repository root).
func (f *fixture) goBuild(out, pkg string, ldflags string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = f.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// dir makes a directory under the work directory.
func (f *fixture) dir(parts ...string) string {
	d := filepath.Join(append([]string{f.work}, parts...)...)
	if err := os.MkdirAll(d, 0o700); err != nil {
		panic(err) // the work directory was made by this run
	}
	return d
}

// buildImages builds conjur-swarm and the reader app, imports each as an
// image on the first node and loads it on the others (docker save | docker
// load keeps the image ID, which services name with --no-resolve-image).
func (f *fixture) buildImages() error {
	f.bin = filepath.Join(f.dir("agent-root"), "conjur-swarm")
	reader := filepath.Join(f.dir("reader-root"), "reader")
	if err := f.goBuild(f.bin, "./cmd/conjur-swarm", "-s -w"); err != nil {
		return err
	}
	if err := f.goBuild(reader, "./e2e/testdata/reader", "-s -w"); err != nil {
		return err
	}
	var err error
	if f.agentImage, err = f.importEverywhere(filepath.Dir(f.bin), `["/conjur-swarm", "bootstrap-agent"]`); err != nil {
		return err
	}
	f.readerImage, err = f.importEverywhere(filepath.Dir(reader), `["/reader"]`)
	return err
}

func (f *fixture) importEverywhere(dir, entrypoint string) (string, error) {
	first := f.lab.nodes[0]
	var tarball bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	tarCmd := exec.CommandContext(ctx, "tar", "-C", dir, "-c", ".")
	tarCmd.Stdout = &tarball
	if err := tarCmd.Run(); err != nil {
		return "", fmt.Errorf("tar %s: %w", dir, err)
	}
	id, err := first.dockerIn(&tarball, "import", "-c", "ENTRYPOINT "+entrypoint, "-")
	if err != nil {
		return "", err
	}
	for _, n := range f.lab.nodes[1:] {
		if err := saveLoad(first, n, id); err != nil {
			return "", err
		}
	}
	return id, nil
}

// saveLoad copies image id from one node to another.
func saveLoad(from, to *node, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	save := exec.CommandContext(ctx, "docker", "-H", "unix://"+from.sock, "image", "save", id)
	load := exec.CommandContext(ctx, "docker", "-H", "unix://"+to.sock, "image", "load", "-q")
	pr, pw := io.Pipe()
	save.Stdout, load.Stdin = pw, pr
	var saveErr, loadErr bytes.Buffer // one each: the two commands write at the same time
	save.Stderr, load.Stderr = &saveErr, &loadErr
	if err := load.Start(); err != nil {
		return err
	}
	errSave := save.Run()
	pw.CloseWithError(errSave)
	errLoad := load.Wait()
	if errSave != nil || errLoad != nil {
		return fmt.Errorf("docker save %s on %s | docker load on %s: %v, %v: %s %s", id, from.name, to.name, errSave, errLoad, saveErr.String(), loadErr.String())
	}
	return nil
}

// startConjur starts the Conjur leader with docs/examples and the lab's
// variables, and a read-only follower with a copy of its state (same CA,
// API keys, policy and values), both on the host's end of the lab network.
func (f *fixture) startConjur() error {
	leaderState := f.dir("conjur-leader")
	var err error
	// authn-jwt/swarm is enabled as CONJUR_AUTHENTICATORS would; it is
	// configured only by TestPerStackIdentityFailover.
	if f.conjur, err = conjurdev.New(conjurdev.Options{Logger: zap.NewNop(), StateDir: leaderState, Authenticators: []string{"authn", "authn-jwt/swarm"}}); err != nil {
		return err
	}
	if _, err := f.conjur.LoadDemo(filepath.Join(f.root, "docs", "examples")); err != nil {
		return fmt.Errorf("loading docs/examples into the Conjur leader: %w", err)
	}
	var policy strings.Builder
	for i := 1; i <= labVariables; i++ {
		fmt.Fprintf(&policy, "- !variable lab/v%d\n- !permit\n  role: !group secret-readers\n  privileges: [read, execute]\n  resource: !variable lab/v%d\n", i, i)
	}
	if _, err := f.conjur.LoadConjurPolicy(conjurdev.ModePost, "apps", []byte(policy.String())); err != nil {
		return fmt.Errorf("lab variables: %w", err)
	}
	for i := 1; i <= labVariables; i++ {
		id := fmt.Sprintf("apps/lab/v%d", i)
		v := []byte(fmt.Sprintf("lab-value-%d-%s", i, f.lab.id))
		if err := f.conjur.SetSecret(id, v); err != nil {
			return err
		}
		f.values[id] = v
	}
	if f.conjurL, err = f.conjur.Listen(f.lab.hostIP+":0", true); err != nil {
		return err
	}
	f.onClose(func() { _ = f.conjurL.Close() })

	followerState := filepath.Join(f.work, "conjur-follower")
	if out, err := sh("cp", "-a", leaderState, followerState); err != nil {
		return fmt.Errorf("copying the leader's state for the follower: %w: %s", err, out)
	}
	if f.follower, err = conjurdev.New(conjurdev.Options{Logger: zap.NewNop(), StateDir: followerState}); err != nil {
		return err
	}
	if !f.follower.Restored() {
		return fmt.Errorf("the follower did not restore the leader's state from %s", followerState)
	}
	f.follower.Faults().SetReadOnly(true)
	if f.followerL, err = f.follower.Listen(f.lab.hostIP+":0", true); err != nil {
		return err
	}
	f.onClose(func() { _ = f.followerL.Close() })
	return nil
}

// hostDirs are a manager's /etc/conjur-swarm/{mapping,ca,identity} of
// docs/install.md step 2. The lab's nodes share the host's /etc, so each
// keeps its own copy under its node directory.
func hostDirs(n *node) (mapping, ca, identity string) {
	base := filepath.Join(n.dir, "etc", "conjur-swarm")
	return filepath.Join(base, "mapping"), filepath.Join(base, "ca"), filepath.Join(base, "identity")
}

// installPlugins follows docs/install.md on every manager: make the plugin
// (plugin/build.sh, as `make plugin` does) on the first, `docker plugin
// create` from the same directory on the others, the host directories, the
// settings (both Conjur URLs), enable.
func (f *fixture) installPlugins() error {
	pluginDir := filepath.Join(f.work, "plugin-v1")
	if err := f.makePlugin(f.lab.nodes[0], pluginName, pluginDir, "lab-1"); err != nil {
		return err
	}
	for _, m := range f.lab.managers() {
		mapping, ca, identity := hostDirs(m)
		for _, d := range []string{mapping, ca, identity} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(ca, "conjur.pem"), f.conjurL.CAPEM, 0o644); err != nil {
			return err
		}
		doc, err := os.ReadFile(filepath.Join(f.root, "docs", "examples", "mapping.yml"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(mapping, "mapping.yml"), doc, 0o644); err != nil {
			return err
		}
		if m != f.lab.nodes[0] {
			if _, err := m.docker("plugin", "create", pluginName, pluginDir); err != nil {
				return err
			}
		}
		if err := f.configureAndEnable(m, pluginName); err != nil {
			return err
		}
	}
	return nil
}

// makePlugin runs plugin/build.sh (what `make plugin` runs) against node n:
// it builds the plugin directory dir and creates the plugin name there.
func (f *fixture) makePlugin(n *node, name, dir, version string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "plugin/build.sh", name, dir, "go", "-s -w -X main.version="+version)
	cmd.Dir = f.root
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+n.sock)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("plugin/build.sh %s on %s: %w\n%s", name, n.name, err, b)
	}
	return nil
}

// settings are docs/install.md step 3's, with both Conjur URLs.
func (f *fixture) settings(m *node) []string {
	mapping, ca, identity := hostDirs(m)
	return []string{
		"CONJUR_APPLIANCE_URL=" + f.conjurL.URL + "," + f.followerL.URL,
		"CONJUR_ACCOUNT=" + f.conjur.Account(),
		"CONJUR_AUTHN_LOGIN=" + pluginLogin,
		"CONJUR_CERT_FILE=/etc/conjur-swarm/ca/conjur.pem",
		"CONJUR_SWARM_MAPPING_FILE=/etc/conjur-swarm/mapping/mapping.yml",
		"mapping.source=" + mapping,
		"ca.source=" + ca,
		"identity.source=" + identity,
	}
}

// configureAndEnable sets a disabled plugin's settings, enables it and
// records its ID.
func (f *fixture) configureAndEnable(m *node, name string) error {
	if _, err := m.docker(append([]string{"plugin", "set", name}, f.settings(m)...)...); err != nil {
		return err
	}
	if _, err := m.docker("plugin", "enable", name); err != nil {
		return fmt.Errorf("%w\ndockerd log:\n%s", err, m.logTail(20))
	}
	id, err := m.docker("plugin", "inspect", "-f", "{{.Id}}", name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.pluginIDs[m] = id
	f.mu.Unlock()
	return nil
}

func (f *fixture) pluginID(m *node) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pluginIDs[m]
}

// labStack puts a lab service in "stack lab": the example mapping's by-label
// rule serves apps/lab/... only to the services of that stack.
const labStack = "com.docker.stack.namespace=lab"

// credentialJSON is the plugin's bootstrap credential and the Conjur it
// belongs to (both appliance URLs, as CONJUR_APPLIANCE_URL lists them).
func (f *fixture) credentialJSON() ([]byte, error) {
	key, err := f.conjur.APIKey("host:swarm/conjur-plugin")
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"login": pluginLogin, "api_key": key, "account": f.conjur.Account(),
		"appliance_url": f.conjurL.URL + "," + f.followerL.URL})
}

// startAgent creates the bootstrap secret and the agent's global service
// as docs/conjur.md does.
func (f *fixture) startAgent() error {
	cred, err := f.credentialJSON()
	if err != nil {
		return err
	}
	m := f.lab.nodes[0]
	if _, err := m.dockerIn(bytes.NewReader(cred), "secret", "create", "conjur-bootstrap", "-"); err != nil {
		return err
	}
	f.agentService = "conjur-bootstrap"
	_, err = m.docker("service", "create", "-d", "--name", f.agentService,
		"--mode", "global", "--constraint", "node.role==manager",
		"--secret", "conjur-bootstrap",
		"--mount", "type=bind,source=/run/docker/plugins,target=/run/docker/plugins",
		"--no-resolve-image", f.agentImage)
	return err
}

// pluginStatus is the part of `conjur-swarm status -o json` the lab reads.
type pluginStatus struct {
	Version string `json:"version"`
	Conjur  *struct {
		CredentialSource string    `json:"credential_source"`
		CredentialSetAt  time.Time `json:"credential_set_at"`
		LastURL          string    `json:"last_url"`
	} `json:"conjur"`
	Counters struct {
		Requests uint64 `json:"requests"`
		Allowed  uint64 `json:"allowed"`
		Errors   uint64 `json:"errors"`
	} `json:"counters"`
}

// status asks a manager's plugin for its status through its socket on the
// host's file system (the node's exec-root is its own directory).
func (f *fixture) status(m *node) (pluginStatus, error) {
	var st pluginStatus
	sock := filepath.Join(m.dir, "run", "plugins", f.pluginID(m), "conjur.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := harness.Run(ctx, nil, f.bin, "status", "--socket", sock, "-o", "json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("status of %s's plugin: %w: %s", m.name, err, out)
	}
	return st, nil
}

// waitHandoff waits until manager m's plugin holds the handed-over
// credential and returns its status.
func (f *fixture) waitHandoff(t testing.TB, m *node) pluginStatus {
	t.Helper()
	var st pluginStatus
	poll(t, handoffWait(m), 3*time.Minute, func() (bool, string) {
		var ok bool
		var status string
		st, ok, status = f.handedOver(m)
		return ok, status
	}, func() string { return m.logTail(20) })
	return st
}

func handoffWait(m *node) string { return "the credential handed over to " + m.name + "'s plugin" }

// handedOver reports whether manager m's plugin holds the handed-over
// credential, with its status.
func (f *fixture) handedOver(m *node) (pluginStatus, bool, string) {
	st, err := f.status(m)
	if err != nil {
		return st, false, err.Error()
	}
	if st.Conjur == nil || st.Conjur.CredentialSource != "handoff" {
		return st, false, fmt.Sprintf("%+v", st.Conjur)
	}
	return st, true, ""
}

// name returns a unique object name.
func (f *fixture) name(kind string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return fmt.Sprintf("%s-%d", kind, f.seq)
}

// secret creates a driver secret naming variable, on manager m.
func (f *fixture) secret(t *testing.T, m *node, driver, name, variable string) {
	t.Helper()
	m.must(t, "secret", "create", "--driver", driver, "--label", "conjur.variable="+variable, name)
}

// readersOK waits until want tasks of service run with every secret read
// exactly as Conjur holds it, and returns how many ran on each node.
func (f *fixture) readersOK(t *testing.T, service string, want int, secrets map[string]string, skip map[string]bool) map[*node]int {
	t.Helper()
	perNode := map[*node]int{}
	poll(t, fmt.Sprintf("%d running tasks of %s with their secrets read", want, service), 4*time.Minute, func() (bool, string) {
		perNode = map[*node]int{}
		got := 0
		var problems []string
		for _, n := range f.lab.nodes {
			if n.dockerdPID() == 0 {
				continue
			}
			outs, err := n.containerOutputs(service)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			for taskID, o := range outs {
				if skip[taskID] || !o.done {
					continue
				}
				for name, variable := range secrets {
					if !bytes.Equal(o.values[name], f.values[variable]) {
						t.Fatalf("task %s on %s: /run/secrets/%s holds %d bytes, want the %d bytes of %s", taskID, n.name, name, len(o.values[name]), len(f.values[variable]), variable)
					}
				}
				perNode[n]++
				got++
			}
		}
		return got >= want, fmt.Sprintf("%d read; %s", got, strings.Join(problems, "; "))
	}, func() string { return f.diagnose(service) })
	return perNode
}

// diagnose is what a failed wait on a service prints: its tasks, and the
// last lines each manager's plugin logged about it.
func (f *fixture) diagnose(service string) string {
	var b strings.Builder
	for _, m := range f.lab.managers() {
		if out, err := m.docker("service", "ps", "--no-trunc", service); err == nil {
			b.WriteString(out + "\n")
			break
		}
	}
	for _, m := range f.lab.managers() {
		lines, err := m.pluginLog(f.pluginID(m))
		if err != nil {
			continue
		}
		var about []string
		for _, l := range lines {
			if l.str("service") == service || l.str("level") == "error" || l.str("level") == "warn" {
				about = append(about, l.raw)
			}
		}
		if len(about) > 8 {
			about = about[len(about)-8:]
		}
		fmt.Fprintf(&b, "%s's plugin, last lines about %s or warnings:\n%s\n", m.name, service, strings.Join(about, "\n"))
	}
	return b.String()
}

// failedForSecret counts a service's tasks that failed because a secret
// was not delivered.
func failedForSecret(m *node, service string) (int, []string, error) {
	ts, err := m.tasks(service)
	if err != nil {
		return 0, nil, err
	}
	n := 0
	var errs []string
	for _, tk := range ts {
		if tk.failed() && strings.Contains(tk.err, "secret") {
			n++
			errs = append(errs, tk.err)
		}
	}
	return n, errs, nil
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// sortedNames is the names of nodes in order (for messages).
func sortedNames(m map[*node]int) []string {
	var s []string
	for n, c := range m {
		s = append(s, fmt.Sprintf("%s=%d", n.name, c))
	}
	sort.Strings(s)
	return s
}

func itoa(i int) string { return fmt.Sprint(i) }
