package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// demoValue is the value docs/examples/values.yml gives a variable.
func demoValue(t *testing.T, s *suite, id string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.root, "docs", "examples", "values.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]string
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	v, ok := values[id]
	if !ok {
		t.Fatalf("docs/examples/values.yml has no %s", id)
	}
	if b64, ok := strings.CutPrefix(v, "base64:"); ok {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("values.yml %s: %v", id, err)
		}
		return b
	}
	return []byte(v)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkValues fails unless the reader frames hold exactly want.
func checkValues(t *testing.T, taskID string, f frames, want map[string][]byte) {
	t.Helper()
	for name, w := range want {
		got, ok := f.values[name]
		switch {
		case !ok:
			t.Errorf("task %s: /run/secrets/%s not read (%s)", taskID, name, f.missing[name])
		case !bytes.Equal(got, w):
			t.Errorf("task %s: /run/secrets/%s holds %d bytes (sha256 %x), want %d bytes (sha256 %x)",
				taskID, name, len(got), sha256.Sum256(got), len(w), sha256.Sum256(w))
		}
	}
}

// only returns the single frames of a one-task wait.
func only(m map[string]frames) (string, frames) {
	for id, f := range m {
		return id, f
	}
	return "", frames{}
}

// Scenario 1: `docker secret create --driver` with a conjur.variable label;
// a service reads exactly Conjur's value, text and binary.
func TestSecretCreateWithDriverLabel(t *testing.T) {
	s := getSuite(t)
	big := randomBytes(t, 64<<10) // binary, every byte value likely, 64 KiB
	bigID := s.newVariable(t, big)

	text, tls, bin := s.name("text"), s.name("tls"), s.name("bin")
	s.secret(t, s.plugin, text, "conjur.variable=apps/demo/db-password")
	s.secret(t, s.plugin, tls, "conjur.variable=apps/demo/tls-key")
	s.secret(t, s.plugin, bin, "conjur.variable="+bigID)
	svc := s.name("svc")
	s.service(t, svc, []string{text, tls, bin}, "--restart-condition", "none")

	taskID, f := only(waitReaders(t, svc, 1, nil))
	textValue := demoValue(t, s, "apps/demo/db-password")
	checkValues(t, taskID, f, map[string][]byte{
		text: textValue,
		tls:  demoValue(t, s, "apps/demo/tls-key"),
		bin:  big,
	})

	// The plugin logged the fetch, and no value appears in its log.
	s.waitPluginLog(t, s.pluginID, text)
	lines, err := dlog.pluginLines(s.pluginID)
	if err == nil {
		for _, l := range lines {
			for _, leak := range []string{string(textValue), base64.StdEncoding.EncodeToString(textValue), hex.EncodeToString(textValue)} {
				if strings.Contains(l, leak) {
					t.Errorf("plugin log line holds the value of %s: %s", text, l)
				}
			}
		}
	}
}

// Scenario 2: a service the mapping does not allow. The task fails, and
// the plugin's log and `conjur-swarm status` name the rule and the reason.
func TestServiceNotAllowedByMapping(t *testing.T) {
	s := getSuite(t)
	// A stack's secret (rule stack-secrets) used by a service outside the stack.
	stack := s.name("stk")
	secret := stack + "_db-password"
	s.secret(t, s.plugin, secret, "com.docker.stack.namespace="+stack)
	svc := s.name("svc")
	s.service(t, svc, []string{secret}, "--restart-condition", "none")

	msg := waitTaskFailure(t, svc)
	if !strings.Contains(msg, "not found") {
		t.Errorf("task error %q: want Swarm's \"secret ... not found\"", msg)
	}
	line := s.waitPluginLog(t, s.pluginID, secret, "stack-secrets", "DENIED")
	if line != "" && !strings.Contains(line, "com.docker.stack.namespace") {
		t.Errorf("plugin log line does not name the failing condition (service label com.docker.stack.namespace): %s", line)
	}
	st := s.status(t, s.pluginID)
	for _, want := range []string{secret, "stack-secrets", "DENIED", "com.docker.stack.namespace"} {
		if !strings.Contains(st, want) {
			t.Errorf("conjur-swarm status does not mention %q:\n%s", want, st)
		}
	}
}

// Scenario 3: `docker stack deploy` of a compose 3.8 file whose secrets use
// `driver:` (with and without labels, so both rules of docs/examples/mapping.yml
// serve them), and an `external: true` secret created beforehand with --driver.
// A second service of the stack labels a secret of its own into stack demo's
// branch (issue 11): the plugin denies it and its task never starts.
func TestStackDeploy(t *testing.T) {
	s := getSuite(t)
	stack := s.name("stk")
	s.addVariables(t, stack+"/db-password", stack+"/api-token")
	dbPassword := []byte("stack-db-password-" + hex.EncodeToString(randomBytes(t, 4)))
	apiToken := randomBytes(t, 300)
	for id, v := range map[string][]byte{"apps/" + stack + "/db-password": dbPassword, "apps/" + stack + "/api-token": apiToken} {
		if err := s.dev.SetSecret(id, v); err != nil {
			t.Fatal(err)
		}
	}
	ext := s.name("ext")
	s.secret(t, s.plugin, ext, "conjur.variable=apps/"+stack+"/api-token")

	compose := fmt.Sprintf(`version: "3.8"
services:
  app:
    image: %[1]s
    command: ["db-password", "api-token", "labelled", "external"]
    networks: [hostnet]
    deploy:
      restart_policy: {condition: none}
    secrets:
      - db-password
      - api-token
      - labelled
      - source: external
        target: external
  thief:
    image: %[1]s
    command: ["stolen"]
    networks: [hostnet]
    deploy:
      restart_policy: {condition: none}
    secrets: [stolen]
secrets:
  db-password:
    driver: %[2]s
  api-token:
    driver: %[2]s
  labelled:
    driver: %[2]s
    labels:
      conjur.variable: apps/%[4]s/db-password
  stolen:
    driver: %[2]s
    labels:
      conjur.variable: apps/demo/db-password
  external:
    external: true
    name: %[3]s
networks:
  hostnet:
    external: true
    name: host
`, s.readerImage, s.plugin, ext, stack)
	deployStack(t, stack, compose)

	taskID, f := only(waitReaders(t, stack+"_app", 1, nil))
	checkValues(t, taskID, f, map[string][]byte{
		"db-password": dbPassword,
		"api-token":   apiToken,
		"labelled":    dbPassword,
		"external":    apiToken,
	})
	s.waitPluginLog(t, s.pluginID, stack+"_db-password", "stack-secrets")
	if msg := waitTaskFailure(t, stack+"_thief"); !strings.Contains(msg, "not found") {
		t.Errorf("the task whose secret is labelled into stack demo's branch: error %q, want \"secret ... not found\"", msg)
	}
	s.waitPluginLog(t, s.pluginID, stack+"_stolen", "by-label", "DENIED")
}

// Scenario 4: DoNotReuse. Two replicas under a per-task rule (reuse: false,
// the default) each have their own fetch. Then, with Conjur failing, a new
// task of a per-task secret fails, while a new task of a reusable secret
// (reuse: true) starts with the copy the node already holds for another task:
// the stale reuse that `reuse: false` exists to prevent.
func TestDoNotReuse(t *testing.T) {
	s := getSuite(t)
	perTask := s.newVariable(t, []byte("per-task-value-1"))
	reusable := s.newVariable(t, []byte("reusable-value-1"))
	pt, ru := s.name("pt"), s.name("ru")
	s.secret(t, s.plugin, pt, "conjur.variable="+perTask)
	s.secret(t, s.plugin, ru, "cse2e.reusable="+reusable)

	fetches := func() int64 { return s.dev.Count("secret") + s.dev.Count("batch") }
	before := fetches()
	twin := s.name("svc")
	s.service(t, twin, []string{pt}, "--replicas", "2", "--restart-condition", "none")
	tasks := waitReaders(t, twin, 2, nil)
	for id, f := range tasks {
		checkValues(t, id, f, map[string][]byte{pt: []byte("per-task-value-1")})
		// The plugin answered this very task, with DoNotReuse.
		s.waitPluginLog(t, s.pluginID, `"task":"`+id+`"`, `"secret":"`+pt+`"`, `"do_not_reuse":true`)
	}
	if n := fetches() - before; n < 2 {
		t.Errorf("Conjur saw %d fetches for 2 replicas of a per-task secret, want at least 2", n)
	}

	holder := s.name("svc")
	s.service(t, holder, []string{pt, ru}, "--restart-condition", "none")
	_, f := only(waitReaders(t, holder, 1, nil))
	checkValues(t, holder, f, map[string][]byte{pt: []byte("per-task-value-1"), ru: []byte("reusable-value-1")})
	s.waitPluginLog(t, s.pluginID, `"secret":"`+ru+`"`, `"rule":"e2e-reusable"`, `"do_not_reuse":false`)

	// Conjur now holds a new value of the reusable variable, and fails.
	if err := s.dev.SetSecret(reusable, []byte("reusable-value-2")); err != nil {
		t.Fatal(err)
	}
	s.dev.Faults().SetStatus(503, 1)
	t.Cleanup(s.dev.Faults().Reset)

	fresh := s.name("svc")
	s.service(t, fresh, []string{pt}, "--restart-condition", "none")
	if msg := waitTaskFailure(t, fresh); !strings.Contains(msg, "not found") {
		t.Errorf("per-task secret with Conjur down: task error %q, want \"secret ... not found\"", msg)
	}
	s.waitPluginLog(t, s.pluginID, `"service":"`+fresh+`"`, `"code":"UNAVAILABLE"`)

	// A reusable secret: what Swarm does now is up to Swarm, and it varies
	// from run to run. Seen here: the task starts with the node's copy fetched
	// for holder (the old value: the stale masking docs/mapping.md warns of),
	// or it fails like the per-task one. Either way it never holds a value the
	// plugin did not hand over.
	stale := s.name("svc")
	s.service(t, stale, []string{ru}, "--restart-condition", "none")
	f, failure := waitReadOrFailed(t, stale)
	if failure != "" {
		if !strings.Contains(failure, "not found") {
			t.Errorf("reusable secret with Conjur down: task error %q, want \"secret ... not found\"", failure)
		}
		t.Logf("reusable secret with Conjur down: Swarm failed the task (%s)", failure)
		return
	}
	checkValues(t, stale, f, map[string][]byte{ru: []byte("reusable-value-1")})
	t.Logf("reusable secret with Conjur down: Swarm started the task with the node's old copy")
}

// waitReadOrFailed waits until a task of service has read its secrets or has
// failed, and returns the reader's frames or the failure as `docker service
// ps` shows it.
func waitReadOrFailed(t testing.TB, service string) (f frames, failure string) {
	t.Helper()
	poll(t, "a task of "+service+" that read its secrets or failed", waitTimeout, func() (bool, string) {
		tasks, err := serviceTasks(service)
		if err != nil {
			return false, err.Error()
		}
		var states []string
		for _, tk := range tasks {
			states = append(states, tk.CurrentState+" "+tk.Error)
			if tk.failed() && tk.Error != "" {
				failure = tk.Error
				return true, ""
			}
			if !tk.running() {
				continue
			}
			if got, err := taskFrames(tk.ID); err == nil && got.ready {
				f = got
				return true, ""
			}
		}
		return false, strings.Join(states, "; ")
	}, func() string { return describeService(service) })
	return f, failure
}

// oneSecretTask starts a one-replica reader service of one new driver secret
// (named after kind) whose variable holds value, waits until its task has
// read exactly that value, and returns the variable, secret, service and
// task.
func (s *suite) oneSecretTask(t *testing.T, kind string, value []byte) (id, sec, svc, taskID string) {
	t.Helper()
	id = s.newVariable(t, value)
	sec = s.name(kind)
	s.secret(t, s.plugin, sec, "conjur.variable="+id)
	svc = s.name("svc")
	s.service(t, svc, []string{sec}, "--restart-condition", "none")
	taskID, f := only(waitReaders(t, svc, 1, nil))
	checkValues(t, taskID, f, map[string][]byte{sec: value})
	return id, sec, svc, taskID
}

// Scenario 5: rotation. A new value set in Conjur reaches the new task that
// `docker service update --force` starts.
func TestRotationReachesNewTasks(t *testing.T) {
	s := getSuite(t)
	id, sec, svc, _ := s.oneSecretTask(t, "rot", []byte("rotation-value-1"))

	if err := s.dev.SetSecret(id, []byte("rotation-value-2")); err != nil {
		t.Fatal(err)
	}
	old := taskIDs(t, svc)
	mustDocker(t, "service", "update", "-d", "--force", svc)
	next, f := only(waitReaders(t, svc, 1, old))
	checkValues(t, next, f, map[string][]byte{sec: []byte("rotation-value-2")})
}

// Scenario 6: the bootstrap credential as a swarm secret. A plugin enabled
// with no credential in its settings fails tasks; the bootstrap-agent
// service hands the credential over; the task then gets its value, and
// neither `docker plugin inspect` nor status shows the key.
func TestBootstrapCredentialFromSwarmSecret(t *testing.T) {
	s := getSuite(t)
	plugin := runID + "/conjur-boot:e2e"
	t.Cleanup(func() { removePlugin(plugin) })
	pluginID, err := s.installPlugin(plugin, "e2e-"+runID+"-boot", s.pluginSettings(false, s.dir("identity-empty")))
	if err != nil {
		t.Fatal(err)
	}

	id := s.newVariable(t, []byte("bootstrap-value-1"))
	sec := s.name("bsec")
	s.secret(t, plugin, sec, "conjur.variable="+id)
	svc := s.name("svc")
	s.service(t, svc, []string{sec}, "--restart-condition", "on-failure", "--restart-delay", "1s")
	if msg := waitTaskFailure(t, svc); !strings.Contains(msg, "not found") {
		t.Errorf("with no credential: task error %q, want \"secret ... not found\"", msg)
	}
	s.waitPluginLog(t, pluginID, sec, "NO_CREDENTIAL")

	agent := s.bootstrapAgent(t)

	// No task could start before the handoff, so a running one got its
	// value after it (the restart policy keeps starting new ones).
	next, f := only(waitReaders(t, svc, 1, nil))
	checkValues(t, next, f, map[string][]byte{sec: []byte("bootstrap-value-1")})
	s.waitPluginLog(t, pluginID, "credential handoff accepted", pluginLogin)

	key, err := s.dev.APIKey("host:swarm/conjur-plugin")
	if err != nil {
		t.Fatal(err)
	}
	inspect := mustDocker(t, "plugin", "inspect", plugin)
	if strings.Contains(inspect, key) {
		t.Error("docker plugin inspect shows the plugin's API key")
	}
	if strings.Contains(mustDocker(t, "service", "inspect", agent), key) {
		t.Error("docker service inspect of the agent shows the plugin's API key")
	}
	st := s.status(t, pluginID)
	if strings.Contains(st, key) {
		t.Error("conjur-swarm status shows the plugin's API key")
	}
	if !strings.Contains(st, "handoff") {
		t.Errorf("conjur-swarm status does not name the credential source \"handoff\":\n%s", st)
	}
}

// Scenario 7: Conjur unreachable. Tasks fail and the plugin's log and status
// name the cause; once Conjur answers again, new tasks succeed with no
// plugin restart.
func TestConjurUnreachable(t *testing.T) {
	s := getSuite(t)
	id := s.newVariable(t, []byte("outage-value-1"))
	sec := s.name("out")
	s.secret(t, s.plugin, sec, "conjur.variable="+id)

	s.dev.Faults().SetDrop(1)
	t.Cleanup(s.dev.Faults().Reset)
	svc := s.name("svc")
	s.service(t, svc, []string{sec}, "--restart-condition", "on-failure", "--restart-delay", "1s")
	if msg := waitTaskFailure(t, svc); !strings.Contains(msg, "not found") {
		t.Errorf("with Conjur down: task error %q, want \"secret ... not found\"", msg)
	}
	s.waitPluginLog(t, s.pluginID, sec, "UNAVAILABLE")
	if st := s.status(t, s.pluginID); !strings.Contains(st, "UNAVAILABLE") {
		t.Errorf("conjur-swarm status does not name the cause UNAVAILABLE:\n%s", st)
	}

	pidBefore := pluginPID(s.pluginID)
	s.dev.Faults().Reset()
	// No task could start during the outage: a running one is a new task
	// started after it (the restart policy keeps starting new ones).
	next, f := only(waitReaders(t, svc, 1, nil))
	checkValues(t, next, f, map[string][]byte{sec: []byte("outage-value-1")})
	switch pidAfter := pluginPID(s.pluginID); {
	case pidBefore == "" || pidAfter == "":
		t.Logf("plugin process ID not readable under %s: not checking that it was not restarted", containerdPluginTasks)
	case pidAfter != pidBefore:
		t.Errorf("the plugin was restarted during the outage (pid %s, now %s)", pidBefore, pidAfter)
	}
}

// containerdPluginTasks is where this engine's containerd keeps the tasks of
// managed plugins (namespace plugins.moby).
const containerdPluginTasks = "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/plugins.moby"

// pluginPID is the host PID of a managed plugin's process, or "" when the
// engine keeps it elsewhere.
func pluginPID(pluginID string) string {
	b, err := os.ReadFile(filepath.Join(containerdPluginTasks, pluginID, "init.pid"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
