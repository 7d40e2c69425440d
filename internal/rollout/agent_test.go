package rollout

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/swarmapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testMapping = `version: 1
account: myorg
within: [apps/]
rules:
  - name: per-node
    match:
      secret: "node_*"
    variable: "apps/nodes/{node}"
  - name: pinned
    match:
      secret_labels: {conjur.variable: "*", conjur.version: "*"}
    variable: "{secret_label:conjur.variable}"
    version: "{secret_label:conjur.version}"
  - name: by-label
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "{secret_label:conjur.variable}"
  - name: dsn
    match:
      secret: "dsn"
    bundle:
      format: json
      variables:
        user: "apps/db/user"
        password: "apps/db/password"
        ca: {variable: "apps/db/ca", version: "1"}
`

const driver = "cyberark/conjur"

// fixture is an agent over a fake swarm holding:
//   - web (opted in) reading db (apps/db/password) and api (apps/api/key)
//   - worker (opted in) reading db
//   - batch (not opted in) reading db
//   - plain (opted in) reading a secret of another driver
type fixture struct {
	t      *testing.T
	clock  *clock
	docker *fakeDocker
	conjur *fakeConjur
	policy *mappingSource
	logs   *observer.ObservedLogs
	agent  *Agent
}

func newFixture(t *testing.T, dryRun bool) *fixture {
	t.Helper()
	p, err := policy.Parse("mapping.yml", []byte(testMapping))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, clock: newClock(), policy: &mappingSource{policy: p},
		conjur: &fakeConjur{versions: map[string]int{"apps/db/password": 3, "apps/api/key": 1}}}
	f.docker = newFakeDocker(f.clock)
	f.docker.addSecret("db", "db", driver+":latest", map[string]string{"conjur.variable": "apps/db/password"})
	f.docker.addSecret("api", "api", driver, map[string]string{"conjur.variable": "apps/api/key"})
	f.docker.addSecret("other", "other", "vault", map[string]string{"conjur.variable": "apps/db/password"})
	f.docker.addService("web", true, "db", "api")
	f.docker.addService("worker", true, "db")
	f.docker.addService("batch", false, "db")
	f.docker.addService("plain", true, "other")
	f.agent = f.newAgent(dryRun)
	return f
}

func (f *fixture) newAgent(dryRun bool) *Agent {
	core, logs := observer.New(zapcore.InfoLevel)
	f.logs = logs
	a, err := New(Options{
		Docker: f.docker, Versions: f.conjur, Policy: f.policy.load,
		Account: "myorg", Drivers: NewDrivers(driver),
		Interval: 10 * time.Second, MinGap: 2 * time.Minute, DryRun: dryRun,
		Logger: zap.New(core), Now: f.clock.Now,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) pass() PassResult {
	f.t.Helper()
	return f.agent.Pass(context.Background())
}

// rolled returns the services a pass rolled out, sorted.
func rolled(r PassResult) []string {
	var out []string
	for name := range r.Rollouts {
		out = append(out, name)
	}
	sortStrings(out)
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func serviceStatus(t *testing.T, st Status, name string) ServiceStatus {
	t.Helper()
	for _, s := range st.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("status has no service %s: %+v", name, st.Services)
	return ServiceStatus{}
}

func (f *fixture) wantUpdates(want ...string) {
	f.t.Helper()
	if diff := cmp.Diff(want, f.docker.updated()); diff != "" {
		f.t.Errorf("forced updates (-want +got):\n%s", diff)
	}
}

func TestFirstPassOnlyRecords(t *testing.T) {
	f := newFixture(t, false)
	if r := f.pass(); len(r.Rollouts) != 0 || r.Err != nil {
		t.Fatalf("first pass: rollouts %v, error %v; want it only to record", rolled(r), r.Err)
	}
	f.wantUpdates()
	if !f.agent.Status().Primed {
		t.Error("status: not primed after a successful first pass")
	}
}

func TestEqualVersionsRollNothing(t *testing.T) {
	f := newFixture(t, false)
	f.pass()
	for i := 0; i < 3; i++ {
		f.clock.Advance(10 * time.Minute)
		if r := f.pass(); len(r.Rollouts)+len(r.Waiting) != 0 {
			t.Fatalf("pass %d with equal versions: rollouts %v, waiting %v", i, rolled(r), r.Waiting)
		}
	}
	f.wantUpdates()
}

// A rise rolls every opted-in service that reads the variable, once, with
// one audit line naming service, variable, versions and reason; services
// not opted in, and secrets of other drivers, are untouched.
func TestRiseRollsOptedInServicesOnce(t *testing.T) {
	f := newFixture(t, false)
	f.pass()
	f.clock.Advance(10 * time.Minute)
	f.conjur.set("apps/db/password", 4)
	r := f.pass()
	if diff := cmp.Diff([]string{"web", "worker"}, rolled(r)); diff != "" {
		t.Fatalf("rolled (-want +got):\n%s", diff)
	}
	want := []Change{{Variable: "apps/db/password", From: 3, To: 4}}
	if diff := cmp.Diff(want, r.Rollouts["web"].Changes); diff != "" {
		t.Errorf("web's changes (-want +got):\n%s", diff)
	}
	if f.docker.forceUpdates("web") != 1 || f.docker.forceUpdates("worker") != 1 {
		t.Errorf("ForceUpdate counters web %d worker %d, want 1 each", f.docker.forceUpdates("web"), f.docker.forceUpdates("worker"))
	}
	if n := f.docker.forceUpdates("batch"); n != 0 {
		t.Errorf("batch (not opted in) was updated %d times", n)
	}
	if n := f.docker.forceUpdates("plain"); n != 0 {
		t.Errorf("plain (another driver's secret) was updated %d times", n)
	}
	audit := f.logs.FilterMessage("rollout").FilterField(zap.String("service", "web")).All()
	if len(audit) != 1 {
		t.Fatalf("%d audit lines for web, want 1", len(audit))
	}
	ctx := audit[0].ContextMap()
	if got := ctx["variables"]; !cmp.Equal(got, []any{"apps/db/password 3->4"}) {
		t.Errorf("audit variables %v, want [apps/db/password 3->4]", got)
	}
	if got := ctx["reason"]; got != "a variable's version rose" {
		t.Errorf("audit reason %v", got)
	}

	// The next passes see the same versions: nothing more.
	f.docker.complete("web")
	f.docker.complete("worker")
	f.clock.Advance(10 * time.Minute)
	if r := f.pass(); len(r.Rollouts) != 0 {
		t.Errorf("pass after the rollout rolled %v again", rolled(r))
	}
	f.wantUpdates("web", "worker")
}

// A change while the service is updating waits for the update to end, and
// then for min-gap after the update started.
func TestInProgressUpdateAndMinGap(t *testing.T) {
	f := newFixture(t, false)
	f.pass()
	f.clock.Advance(10 * time.Minute)
	f.conjur.set("apps/api/key", 2)
	if r := f.pass(); !cmp.Equal(rolled(r), []string{"web"}) {
		t.Fatalf("rolled %v, want [web]", rolled(r))
	}
	rolledAt := f.clock.Now()

	// A second rotation during the rollout.
	f.clock.Advance(10 * time.Second)
	f.conjur.set("apps/api/key", 3)
	r := f.pass()
	if len(r.Rollouts) != 0 || !strings.Contains(r.Waiting["web"], "updating") {
		t.Fatalf("during the update: rollouts %v, waiting %q; want waiting on the update", rolled(r), r.Waiting["web"])
	}
	// The update ends before min-gap: still waiting, now on min-gap.
	f.clock.Advance(20 * time.Second)
	f.docker.complete("web")
	r = f.pass()
	if len(r.Rollouts) != 0 || !strings.Contains(r.Waiting["web"], "min-gap") {
		t.Fatalf("after the update, inside min-gap: rollouts %v, waiting %q; want waiting on min-gap", rolled(r), r.Waiting["web"])
	}
	if got := serviceStatus(t, f.agent.Status(), "web").Pending; !strings.Contains(got, "min-gap") {
		t.Errorf("status pending %q, want the min-gap reason", got)
	}
	// Min-gap after the first rollout: the second one starts.
	f.clock.Advance(rolledAt.Add(2 * time.Minute).Sub(f.clock.Now()))
	r = f.pass()
	if !cmp.Equal(rolled(r), []string{"web"}) {
		t.Fatalf("at min-gap: rolled %v, waiting %v; want web", rolled(r), r.Waiting)
	}
	if diff := cmp.Diff([]Change{{Variable: "apps/api/key", From: 2, To: 3}}, r.Rollouts["web"].Changes); diff != "" {
		t.Errorf("second rollout's changes (-want +got):\n%s", diff)
	}
	f.wantUpdates("web", "web")
}

// After a restart the agent records what it finds (a rise while it was
// down is not rolled), and min-gap counts from the engine's record of the
// service's last update.
func TestRestartRecordsFirstAndKeepsMinGap(t *testing.T) {
	f := newFixture(t, false)
	f.pass()
	f.clock.Advance(10 * time.Minute)
	f.conjur.set("apps/db/password", 4)
	f.pass() // rolls web and worker
	f.docker.complete("web")
	f.docker.complete("worker")

	// Restart: a new agent, the version rose again meanwhile.
	f.clock.Advance(30 * time.Second)
	f.conjur.set("apps/db/password", 5)
	f.agent = f.newAgent(false)
	if r := f.pass(); len(r.Rollouts) != 0 {
		t.Fatalf("first pass after a restart rolled %v", rolled(r))
	}
	f.conjur.set("apps/db/password", 6)
	r := f.pass()
	if len(r.Rollouts) != 0 || !strings.Contains(r.Waiting["web"], "min-gap") {
		t.Fatalf("rise after a restart inside min-gap of the last update: rollouts %v, waiting %v", rolled(r), r.Waiting)
	}
	f.clock.Advance(2 * time.Minute)
	if r := f.pass(); !cmp.Equal(rolled(r), []string{"web", "worker"}) {
		t.Fatalf("after min-gap: rolled %v, want web and worker", rolled(r))
	}
	f.wantUpdates("web", "worker", "web", "worker")
}

func TestDryRunChangesNothing(t *testing.T) {
	f := newFixture(t, true)
	f.pass()
	f.clock.Advance(10 * time.Minute)
	f.conjur.set("apps/db/password", 4)
	r := f.pass()
	if !cmp.Equal(rolled(r), []string{"web", "worker"}) || !r.Rollouts["web"].DryRun {
		t.Fatalf("dry-run pass: %+v; want web and worker reported as dry-run", r.Rollouts)
	}
	f.wantUpdates()
	if n := f.logs.FilterMessage("rollout").FilterField(zap.Bool("dry_run", true)).Len(); n != 2 {
		t.Errorf("%d dry-run audit lines, want 2", n)
	}
	// Once said, not repeated.
	f.clock.Advance(10 * time.Minute)
	if r := f.pass(); len(r.Rollouts) != 0 {
		t.Errorf("dry-run repeated %v", rolled(r))
	}
	if st := f.agent.Status(); !st.DryRun || serviceStatus(t, st, "web").LastRollout == nil || !serviceStatus(t, st, "web").LastRollout.DryRun {
		t.Errorf("status does not show the dry run: %+v", st)
	}
}

// A pass that cannot see Docker, Conjur or the mapping rolls nothing out,
// says why with a code once, and a change made meanwhile rolls out when it
// works again.
func TestFailuresRollNothingAndRecover(t *testing.T) {
	for _, tt := range []struct {
		name   string
		code   errcode.Code
		break_ func(f *fixture)
		heal   func(f *fixture)
	}{
		{"fail/docker unavailable", errcode.DockerUnavailable,
			func(f *fixture) {
				f.docker.FailList = errors.New("docker engine at /var/run/docker.sock: connection refused")
			},
			func(f *fixture) { f.docker.FailList = nil }},
		{"fail/conjur unavailable", errcode.Unavailable,
			func(f *fixture) {
				f.conjur.Fail = &conjur.Error{Code: errcode.Unavailable, Msg: "every Conjur URL failed"}
			},
			func(f *fixture) { f.conjur.Fail = nil }},
		{"fail/mapping invalid", errcode.MappingInvalid,
			func(f *fixture) { f.policy.broken = true },
			func(f *fixture) { f.policy.broken = false }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, false)
			f.pass()
			tt.break_(f)
			f.conjur.set("apps/db/password", 4)
			for i := 0; i < 3; i++ {
				f.clock.Advance(10 * time.Minute)
				r := f.pass()
				if r.Err == nil || r.Err.Code != tt.code || len(r.Rollouts) != 0 {
					t.Fatalf("pass %d: error %+v, rollouts %v; want %s and none", i, r.Err, rolled(r), tt.code)
				}
			}
			if n := f.logs.FilterMessageSnippet("rollout pass failed").Len(); n != 1 {
				t.Errorf("the failure was logged %d times over 3 passes, want once", n)
			}
			if st := f.agent.Status(); st.Error == nil || st.Error.Code != tt.code {
				t.Errorf("status error %+v, want %s", st.Error, tt.code)
			}
			f.wantUpdates()

			tt.heal(f)
			f.clock.Advance(10 * time.Minute)
			if r := f.pass(); !cmp.Equal(rolled(r), []string{"web", "worker"}) {
				t.Fatalf("after recovery: rolled %v, error %+v; want web and worker", rolled(r), r.Err)
			}
			if st := f.agent.Status(); st.Error != nil {
				t.Errorf("status still shows %+v after recovery", st.Error)
			}
		})
	}
}

func TestRefusedUpdateIsRetried(t *testing.T) {
	f := newFixture(t, false)
	f.pass()
	f.clock.Advance(10 * time.Minute)
	f.conjur.set("apps/api/key", 2)
	f.docker.FailUpdate = &swarmapi.Error{Op: "POST /services/id-web/update", Status: 500, Message: "update out of sequence"}
	r := f.pass()
	if len(r.Rollouts) != 0 || !strings.Contains(r.Waiting["web"], string(errcode.UpdateFailed)) {
		t.Fatalf("refused update: rollouts %v, waiting %v", rolled(r), r.Waiting)
	}
	f.docker.FailUpdate = nil
	f.clock.Advance(10 * time.Second)
	if r := f.pass(); !cmp.Equal(rolled(r), []string{"web"}) {
		t.Fatalf("retry: rolled %v, want web", rolled(r))
	}
	f.wantUpdates("web")
}

func TestPausedUpdateWaitsForTheOperator(t *testing.T) {
	f := newFixture(t, false)
	f.pass()
	f.docker.setState("web", swarmapi.UpdatePaused, "update paused due to failure or early termination of task x")
	f.clock.Advance(10 * time.Minute)
	f.conjur.set("apps/api/key", 2)
	for i := 0; i < 2; i++ {
		r := f.pass()
		if len(r.Rollouts) != 0 || !strings.Contains(r.Waiting["web"], string(errcode.UpdatePaused)) {
			t.Fatalf("paused: rollouts %v, waiting %v", rolled(r), r.Waiting)
		}
	}
	if n := f.logs.FilterField(zap.String("code", string(errcode.UpdatePaused))).Len(); n != 1 {
		t.Errorf("the paused update was logged %d times, want once", n)
	}
	f.docker.complete("web")
	f.clock.Advance(10 * time.Minute)
	if r := f.pass(); !cmp.Equal(rolled(r), []string{"web"}) {
		t.Fatalf("after the operator resolved it: rolled %v", rolled(r))
	}
}

// A bundle's members are watched like variables: the rise of one rolls the
// service; a member pinned to a version is not watched.
func TestBundleMembersAreWatched(t *testing.T) {
	f := newFixture(t, false)
	f.conjur.set("apps/db/user", 7)
	f.conjur.set("apps/db/ca", 1)
	f.docker.addSecret("dsn", "dsn", driver, nil)
	f.docker.addService("api", true, "dsn")
	f.pass()
	api := serviceStatus(t, f.agent.Status(), "api")
	var ids []string
	for _, v := range api.Variables {
		ids = append(ids, v.ID)
	}
	if diff := cmp.Diff([]string{"apps/db/password", "apps/db/user"}, ids); diff != "" {
		t.Errorf("api's watched variables (-want +got):\n%s", diff)
	}
	f.clock.Advance(10 * time.Minute)
	f.conjur.set("apps/db/ca", 2) // pinned: nothing
	if r := f.pass(); len(r.Rollouts) != 0 {
		t.Fatalf("a pinned member's rise rolled %v", rolled(r))
	}
	f.conjur.set("apps/db/user", 8)
	if r := f.pass(); !cmp.Equal(rolled(r), []string{"api"}) {
		t.Fatalf("a member's rise rolled %v, want api", rolled(r))
	}
}

// Secrets the agent cannot watch are reported once each, with a code, and
// never roll anything.
func TestUnwatchableSecretsAreReportedOnce(t *testing.T) {
	f := newFixture(t, false)
	f.docker.addSecret("pernode", "node_cert", driver, nil)
	f.docker.addSecret("pin", "pin", driver, map[string]string{"conjur.variable": "apps/pinned", "conjur.version": "2"})
	f.docker.addSecret("hidden", "hidden", driver, map[string]string{"conjur.variable": "apps/hidden"})
	f.docker.addSecret("outside", "outside", driver, map[string]string{"conjur.variable": "other/x"})
	f.docker.addService("edge", true, "pernode", "pin", "hidden", "outside")
	for i := 0; i < 3; i++ {
		f.pass()
		f.clock.Advance(time.Minute)
	}
	for _, code := range []errcode.Code{errcode.NodeDependent, errcode.PinnedVersion, errcode.NotVisible, errcode.Denied} {
		if n := f.logs.FilterField(zap.String("code", string(code))).Len(); n != 1 {
			t.Errorf("%s logged %d times over 3 passes, want once", code, n)
		}
	}
	var codes []string
	for _, p := range f.agent.Status().Problems {
		codes = append(codes, string(p.Code))
	}
	sortStrings(codes)
	if diff := cmp.Diff([]string{"DENIED", "NODE_DEPENDENT", "NOT_VISIBLE", "PINNED_VERSION"}, codes); diff != "" {
		t.Errorf("status problems (-want +got):\n%s", diff)
	}
	// Conjur is asked once per pass, for the visible and hidden ids only.
	last := f.conjur.calls[len(f.conjur.calls)-1]
	if diff := cmp.Diff([]string{"apps/api/key", "apps/db/password", "apps/hidden"}, last); diff != "" {
		t.Errorf("ids asked of Conjur (-want +got):\n%s", diff)
	}
	if len(f.conjur.calls) != 3 {
		t.Errorf("%d Conjur calls over 3 passes, want 3", len(f.conjur.calls))
	}
}

func TestStatusOverTheSocket(t *testing.T) {
	f := newFixture(t, false)
	f.pass()
	f.clock.Advance(10 * time.Minute)
	f.conjur.set("apps/db/password", 4)
	f.pass()

	path := filepath.Join(t.TempDir(), "rollout.sock")
	ln, err := ListenStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.agent.ServeStatus(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("ServeStatus returned %v, want context.Canceled", err)
		}
	}()
	got, err := FetchStatus(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	want := f.agent.Status()
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("status over the socket (-local +socket):\n%s", diff)
	}
	web := serviceStatus(t, got, "web")
	wantVars := []VariableStatus{
		{ID: "apps/api/key", Secrets: []string{"api"}, Version: 1, Rolled: 1},
		{ID: "apps/db/password", Secrets: []string{"db"}, Version: 4, Rolled: 4},
	}
	if diff := cmp.Diff(wantVars, web.Variables); diff != "" {
		t.Errorf("web's variables (-want +got):\n%s", diff)
	}
	if web.LastRollout == nil || web.LastRollout.Changes[0].To != 4 {
		t.Errorf("web's last rollout %+v, want the one to version 4", web.LastRollout)
	}
}

func TestRunPassesUntilCanceled(t *testing.T) {
	f := newFixture(t, false)
	f.docker.listedCalls = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.agent.Run(ctx) }()
	<-f.docker.listedCalls // the first pass runs at once
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
}

func TestNewReportsEveryMissingOption(t *testing.T) {
	_, err := New(Options{Interval: -1})
	if err == nil {
		t.Fatal("New with no options succeeded")
	}
	for _, want := range []string{"Docker", "Conjur client", "mapping", "CONJUR_ACCOUNT", "--driver", "negative", "logger"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New's error does not mention %q:\n%v", want, err)
		}
	}
}
