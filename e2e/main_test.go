package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

// Where the plugin sees its settable mounts (plugin/config.json).
const (
	pluginMappingFile    = "/etc/conjur-swarm/mapping/mapping.yml"
	pluginCAFile         = "/etc/conjur-swarm/ca/conjur.pem"
	pluginCredentialFile = "/etc/conjur-swarm/identity/credential.json"
	pluginLogin          = "host/swarm/conjur-plugin"
	pluginSocketBase     = "/run/docker/plugins"
)

var (
	// skipReason is set by TestMain when the engine cannot run the suite.
	skipReason string
	// runID names everything this run creates: cse2e-<6 hex>.
	runID string
	// dlog is where the plugin's output lands (the daemon's log).
	dlog *daemonLog

	suiteOnce sync.Once
	theSuite  *suite
	suiteErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) int {
	if testing.Short() {
		skipReason = "-short given (the suite drives a real Docker Engine)"
		return m.Run()
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: random run id:", err)
		return 1
	}
	runID = namePrefix + hex.EncodeToString(b[:])
	if reason := engineUsable(); reason != "" {
		skipReason = reason
		fmt.Fprintln(os.Stderr, "e2e: skipping:", reason)
		return m.Run()
	}
	unlock, err := lockRun(10 * time.Minute)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer unlock()
	if err := sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: sweeping leftovers of earlier runs (continuing):", err)
	}
	dlog = findDaemonLog()
	code := m.Run()
	if theSuite != nil {
		theSuite.close()
	}
	return code
}

// engineUsable returns why the suite cannot run on this engine, or "".
func engineUsable() string {
	if _, err := exec.LookPath("docker"); err != nil {
		return "no docker CLI on PATH"
	}
	if _, err := docker("info", "--format", "{{.ServerVersion}}"); err != nil {
		return "`docker info` failed, so no Docker daemon answers: " + err.Error()
	}
	if _, err := docker("plugin", "ls"); err != nil {
		return "managed plugins unusable: " + err.Error()
	}
	reason, err := ensureSwarm()
	if err != nil {
		return "swarm state unreadable: " + err.Error()
	}
	return reason
}

// lockRun serialises runs of the suite on this engine: the start-up sweep
// must not remove another run's objects.
func lockRun(wait time.Duration) (func(), error) {
	return harness.Lock(filepath.Join(os.TempDir(), "cse2e.lock"), wait, pollEvery)
}

// suite is what every scenario shares: one Conjur-compatible server, one
// plugin configured against it, the reader and agent images.
type suite struct {
	root        string // repository root
	tmp         string // cse2e-<id>-* temporary directory
	bin         string // conjur-swarm built for the host
	readerImage string // sha256:... of the reader app
	agentImage  string // sha256:... of conjur-swarm with bootstrap-agent as entrypoint

	dev      *conjurdev.Server
	listener *conjurdev.Listener
	caDir    string
	mapDir   string
	idDir    string

	plugin   string // full plugin name, cse2e-<id>/conjur:e2e
	pluginID string

	mu       sync.Mutex
	nvars    int
	closers  []func()
	nameSeqs map[string]int
}

// getSuite skips when the engine is unusable, builds the shared fixture on
// first use, and fails the test when that setup failed.
func getSuite(t *testing.T) *suite {
	t.Helper()
	switch {
	case testing.Short():
		t.Skip("e2e skipped: " + skipReason)
	case skipReason != "":
		harness.Unavailable(t, "the e2e suite", skipReason)
	}
	suiteOnce.Do(func() {
		start := time.Now()
		theSuite = &suite{nameSeqs: map[string]int{}}
		suiteErr = theSuite.setup()
		fmt.Fprintf(os.Stderr, "e2e: setup took %s\n", time.Since(start).Round(time.Millisecond))
	})
	if suiteErr != nil {
		t.Fatalf("e2e setup: %v", suiteErr)
	}
	return theSuite
}

func (s *suite) onClose(f func()) { s.closers = append(s.closers, f) }

// close undoes setup in reverse order.
func (s *suite) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// setup builds the shared fixture; what it made is undone by close, also
// when it fails half-way.
func (s *suite) setup() (err error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("repository root %s: %w", root, err)
	}
	s.root = root
	if s.tmp, err = os.MkdirTemp("", runID+"-"); err != nil {
		return err
	}
	s.onClose(func() { os.RemoveAll(s.tmp) })

	if err := s.buildImages(); err != nil {
		return err
	}

	// The Conjur-compatible server, over HTTPS on loopback (the plugin uses
	// the host's network, so it reaches 127.0.0.1).
	if s.dev, err = conjurdev.New(conjurdev.Options{Logger: zap.NewNop()}); err != nil {
		return err
	}
	if _, err := s.dev.LoadDemo(filepath.Join(root, "docs", "examples")); err != nil {
		return fmt.Errorf("loading docs/examples into the dev server: %w", err)
	}
	if s.listener, err = s.dev.Listen("127.0.0.1:0", true); err != nil {
		return err
	}
	s.onClose(func() { s.listener.Close() })

	// The plugin's settable mounts: CA, mapping policy, identity.
	s.caDir, s.mapDir, s.idDir = s.dir("ca"), s.dir("mapping"), s.dir("identity")
	if err := os.WriteFile(filepath.Join(s.caDir, "conjur.pem"), s.listener.CAPEM, 0o644); err != nil {
		return err
	}
	mapping, err := e2eMapping(filepath.Join(root, "docs", "examples", "mapping.yml"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.mapDir, "mapping.yml"), mapping, 0o644); err != nil {
		return err
	}
	cred, err := s.credentialJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.idDir, "credential.json"), cred, 0o600); err != nil {
		return err
	}

	s.plugin = runID + "/conjur:e2e"
	s.onClose(func() { removePlugin(s.plugin) })
	s.pluginID, err = s.installPlugin(s.plugin, "e2e-"+runID, s.pluginSettings(true, s.idDir))
	if err != nil {
		return err
	}
	return nil
}

// dir makes a directory under the run's temporary directory.
func (s *suite) dir(name string) string {
	d := filepath.Join(s.tmp, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		panic(err) // the temporary directory was just made by this run
	}
	return d
}

// buildImages builds conjur-swarm for the host and the reader app, and
// imports both as images (no registry: `docker import`).
func (s *suite) buildImages() error {
	s.bin = filepath.Join(s.dir("agent-root"), "conjur-swarm")
	reader := filepath.Join(s.dir("reader-root"), "reader")
	for _, b := range []struct{ out, pkg string }{
		{s.bin, "./cmd/conjur-swarm"},
		{reader, "./e2e/testdata/reader"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", b.out, b.pkg)
		cmd.Dir = s.root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	var err error
	readerRef, agentRef := runID+"-reader:e2e", runID+"-agent:e2e"
	s.onClose(func() {
		_ = waitContainersGone(runID)
		_, _ = docker("image", "rm", "-f", readerRef, agentRef)
	})
	if s.readerImage, err = importImage(filepath.Dir(reader), readerRef, []string{"/reader"}); err != nil {
		return err
	}
	if s.agentImage, err = importImage(filepath.Dir(s.bin), agentRef, []string{"/conjur-swarm", "bootstrap-agent"}); err != nil {
		return err
	}
	return nil
}

// credentialJSON is the plugin's Conjur credential (the host's API key) and
// the Conjur it belongs to, as the bootstrap secret holds it.
func (s *suite) credentialJSON() ([]byte, error) {
	key, err := s.dev.APIKey("host:swarm/conjur-plugin")
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"login": pluginLogin, "api_key": key, "account": s.dev.Account(), "appliance_url": s.listener.URL})
}

// pluginSettings are the `docker plugin set` arguments. withCredentialFile
// false leaves the plugin with no credential (the bootstrap scenario).
func (s *suite) pluginSettings(withCredentialFile bool, identityDir string) []string {
	credFile := ""
	if withCredentialFile {
		credFile = pluginCredentialFile
	}
	return []string{
		"CONJUR_APPLIANCE_URL=" + s.listener.URL,
		"CONJUR_ACCOUNT=" + s.dev.Account(),
		"CONJUR_AUTHN_LOGIN=" + pluginLogin,
		"CONJUR_CERT_FILE=" + pluginCAFile,
		"CONJUR_SWARM_MAPPING_FILE=" + pluginMappingFile,
		"CONJUR_SWARM_CREDENTIAL_FILE=" + credFile,
		"CONJUR_SWARM_LOG_LEVEL=debug",
		"mapping.source=" + s.mapDir,
		"ca.source=" + s.caDir,
		"identity.source=" + identityDir,
	}
}

// installPlugin builds the managed plugin with `make plugin`, configures it
// and enables it (the caller removes it with removePlugin). version is
// stamped into the binary (`conjur-swarm status` shows it), which also keeps
// the plugin's content distinct from any other plugin's: this engine refuses
// `docker plugin create` of a directory whose content (files and mtimes) an
// existing plugin already has ("content sha256:...: already exists").
func (s *suite) installPlugin(name, version string, settings []string) (id string, err error) {
	repo, tag, _ := strings.Cut(name, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := run(ctx, nil, "make", "-C", s.root, "--no-print-directory", "plugin",
		"PLUGIN="+repo, "TAG="+tag, "VERSION="+version); err != nil {
		return "", fmt.Errorf("make plugin: %w\n%s", err, out)
	}
	if _, err := docker(append([]string{"plugin", "set", name}, settings...)...); err != nil {
		return "", err
	}
	if _, err := docker("plugin", "enable", name); err != nil {
		return "", fmt.Errorf("%w\nplugin log:\n%s", err, s.pluginLog(name))
	}
	return docker("plugin", "inspect", "-f", "{{.Id}}", name)
}

// pluginLog is the plugin's output so far (for failure messages).
func (s *suite) pluginLog(name string) string {
	id, err := docker("plugin", "inspect", "-f", "{{.Id}}", name)
	if err != nil {
		return err.Error()
	}
	lines, err := dlog.pluginLines(id)
	if err != nil {
		return err.Error()
	}
	return strings.Join(lines, "\n")
}

// e2eMapping is docs/examples/mapping.yml after, first, one reusable rule
// for the DoNotReuse scenario (matched by its own label, so it changes
// nothing for the documented rules), a stale_if_error rule (its own label
// too), the suite's own by-label rule and the
// bundle scenario's rules (matched by their own secret names).
func e2eMapping(docsMapping string) ([]byte, error) {
	data, err := os.ReadFile(docsMapping)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", docsMapping, err)
	}
	rules, ok := doc["rules"].([]any)
	if !ok {
		return nil, fmt.Errorf("%s: no rules list", docsMapping)
	}
	// The stack bundle rules go first: stack-secrets would match them. Before
	// them, the suite's own services (labelled e2eServiceLabel by s.service)
	// are served any conjur.variable label under within: the suite tests the
	// plugin's mechanics with variables of several branches in one service;
	// the docs' rules decide for everything else (stacks the tests deploy,
	// the quickstart).
	// The reusable rule goes first of all: a reusable answer may not follow
	// a rule that matches on the task (e2e-by-label) and could take the same
	// secrets (policy validate refuses that, naming the pair).
	doc["rules"] = append(append([]any{map[string]any{
		"name":     "e2e-reusable",
		"match":    map[string]any{"secret_labels": map[string]any{"cse2e.reusable": "*"}},
		"variable": "{secret_label:cse2e.reusable}",
		"reuse":    true,
	}, map[string]any{
		"name":           "e2e-stale",
		"match":          map[string]any{"secret_labels": map[string]any{"cse2e.stale": "*"}, "service_labels": map[string]any{e2eServiceLabel: runID}},
		"variable":       "{secret_label:cse2e.stale}",
		"stale_if_error": "10m",
	}, map[string]any{
		"name":     "e2e-by-label",
		"match":    map[string]any{"secret_labels": map[string]any{"conjur.variable": "*"}, "service_labels": map[string]any{e2eServiceLabel: runID}},
		"variable": "{secret_label:conjur.variable}",
	}}, e2eBundleRules()...), rules...)
	return yaml.Marshal(doc)
}

// name returns a unique object name: cse2e-<id>-<kind><n>.
func (s *suite) name(kind string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nameSeqs[kind]++
	return fmt.Sprintf("%s-%s%d", runID, kind, s.nameSeqs[kind])
}

// newVariable adds a variable under apps/e2e/ that the plugin may fetch,
// sets its value and returns its id.
func (s *suite) newVariable(t *testing.T, value []byte) string {
	t.Helper()
	s.mu.Lock()
	s.nvars++
	rel := fmt.Sprintf("e2e/v%d", s.nvars)
	s.mu.Unlock()
	s.addVariables(t, rel)
	id := "apps/" + rel
	if err := s.dev.SetSecret(id, value); err != nil {
		t.Fatal(err)
	}
	return id
}

// addVariables declares variables (ids relative to apps/) readable and
// executable by the plugin's group apps/secret-readers.
func (s *suite) addVariables(t *testing.T, rel ...string) {
	t.Helper()
	var b strings.Builder
	for _, r := range rel {
		fmt.Fprintf(&b, "- !variable %s\n- !permit\n  role: !group secret-readers\n  privileges: [read, execute]\n  resource: !variable %s\n", r, r)
	}
	if _, err := s.dev.LoadConjurPolicy(conjurdev.ModePost, "apps", []byte(b.String())); err != nil {
		t.Fatalf("loading policy for %v: %v", rel, err)
	}
}

// secret creates a driver secret (no data: the plugin supplies it) removed
// when the test ends.
func (s *suite) secret(t *testing.T, plugin, name string, labels ...string) {
	t.Helper()
	args := []string{"secret", "create", "--driver", plugin}
	for _, l := range labels {
		args = append(args, "--label", l)
	}
	mustDocker(t, append(args, name)...)
	t.Cleanup(func() { _, _ = docker("secret", "rm", name) })
}

// e2eServiceLabel marks the suite's own services (see e2eMapping).
const e2eServiceLabel = "cse2e.run"

// service creates a reader service reading the given secrets (targets named
// as the secrets), removed when the test ends (before the secrets, which were
// created earlier: cleanups run last-in first-out). extra goes before the
// image (e.g. --replicas 2).
func (s *suite) service(t *testing.T, name string, secrets []string, extra ...string) {
	t.Helper()
	args := []string{"service", "create", "-d", "--name", name, "--no-resolve-image", "--network", "host",
		"--label", e2eServiceLabel + "=" + runID}
	for _, sec := range secrets {
		args = append(args, "--secret", sec)
	}
	args = append(args, extra...)
	args = append(args, s.readerImage)
	args = append(args, secrets...)
	mustDocker(t, args...)
	// Removing the service is enough for its secrets to be removable; its
	// containers stop in the background (the run waits for them at its end,
	// before removing the images).
	t.Cleanup(func() { _, _ = docker("service", "rm", name) })
}

// status is `conjur-swarm status -o json` against a plugin's socket.
func (s *suite) status(t *testing.T, pluginID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := run(ctx, nil, s.bin, "status", "--socket", filepath.Join(pluginSocketBase, pluginID, "conjur.sock"), "-o", "json")
	if err != nil {
		t.Fatalf("conjur-swarm status: %v", err)
	}
	return out
}

// waitPluginLog waits until a line of the plugin's log contains every one of
// want, and returns it. With no readable daemon log it says so and returns "".
func (s *suite) waitPluginLog(t *testing.T, pluginID string, want ...string) string {
	t.Helper()
	if dlog == nil {
		t.Logf("not checking the plugin log: %s", dlog)
		return ""
	}
	var found string
	poll(t, fmt.Sprintf("a plugin log line containing %q", want), 30*time.Second, func() (bool, string) {
		lines, err := dlog.pluginLines(pluginID)
		if err != nil {
			return false, err.Error()
		}
		for _, l := range lines {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			if ok {
				found = l
				t.Logf("plugin log: %s", l)
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d plugin lines in %s", len(lines), dlog)
	}, func() string {
		lines, _ := dlog.pluginLines(pluginID)
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		return "last plugin log lines:\n" + strings.Join(lines, "\n")
	})
	return found
}

// taskIDs is the set of task IDs of a service so far.
func taskIDs(t *testing.T, service string) map[string]bool {
	t.Helper()
	tasks, err := serviceTasks(service)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, tk := range tasks {
		ids[tk.ID] = true
	}
	return ids
}
