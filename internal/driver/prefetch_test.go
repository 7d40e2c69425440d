package driver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// tagFetcher answers every ref with a value no other fetch returns
// ("<id>#<n>") and remembers, for each value, the task (and service) whose
// GetSecret was being served when it was fetched: the test sets current
// before each call, and calls one at a time.
type tagFetcher struct {
	fakeConjur // LastGood, Adopt, Status
	mu         sync.Mutex
	n          int
	owner      map[string]taskKey
	current    taskKey
	gets       int
	manys      [][]conjur.Ref
}

func newTagFetcher() *tagFetcher { return &tagFetcher{owner: map[string]taskKey{}} }

func (f *tagFetcher) mintLocked(ref conjur.Ref) []byte {
	f.n++
	v := fmt.Sprintf("%s#%d", ref.ID, f.n)
	f.owner[v] = f.current
	return []byte(v)
}

func (f *tagFetcher) Get(ctx context.Context, ref conjur.Ref) (conjur.Value, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	return conjur.Value{Data: f.mintLocked(ref)}, nil
}

func (f *tagFetcher) GetMany(ctx context.Context, refs []conjur.Ref) []conjur.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.manys = append(f.manys, refs)
	out := make([]conjur.Result, len(refs))
	for i, r := range refs {
		out[i] = conjur.Result{Value: conjur.Value{Data: f.mintLocked(r)}}
	}
	return out
}

func (f *tagFetcher) fetches() (gets, manys int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets, len(f.manys)
}

// teamResolver allows a variable "<team>/..." to services labelled with that
// team, under the rule the secret's "rule" label names (default "r1").
func teamResolver() *fakeResolver {
	return &fakeResolver{fn: func(r policy.Request) policy.Decision {
		v := r.SecretLabels["conjur.variable"]
		rule := r.SecretLabels["rule"]
		if rule == "" {
			rule = "r1"
		}
		if team, _, _ := strings.Cut(v, "/"); team != r.ServiceLabels["team"] {
			return policy.Decision{Rule: rule, Variable: v, Reason: "team mismatch", Condition: "allow.service_labels"}
		}
		return policy.Decision{Allow: true, Rule: rule, Variable: v, DoNotReuse: true}
	}}
}

// prefetchFixture is a driver with prefetch on over a tagFetcher, with a
// clock the test moves.
type prefetchFixture struct {
	d    *Driver
	f    *tagFetcher
	logs *observer.ObservedLogs
	now  time.Time
	mu   sync.Mutex
}

func newPrefetchFixture(t *testing.T) *prefetchFixture {
	t.Helper()
	fx := &prefetchFixture{f: newTagFetcher(), now: time.Unix(1_700_000_000, 0)}
	core, logs := observer.New(zap.DebugLevel)
	fx.logs = logs
	d, err := New(Options{Resolver: teamResolver(), Conjur: fx.f, Logger: zap.New(core), Prefetch: true,
		Now: func() time.Time { fx.mu.Lock(); defer fx.mu.Unlock(); return fx.now }})
	if err != nil {
		t.Fatal(err)
	}
	fx.d = d
	return fx
}

func (fx *prefetchFixture) advance(d time.Duration) {
	fx.mu.Lock()
	fx.now = fx.now.Add(d)
	fx.mu.Unlock()
}

// get asks for variable v (under rule) for task of service (team).
func (fx *prefetchFixture) get(task, service, team, v, rule string) pluginapi.Response {
	fx.f.mu.Lock()
	fx.f.current = taskKey{task: task, service: service}
	fx.f.mu.Unlock()
	labels := map[string]string{"conjur.variable": v}
	if rule != "" {
		labels["rule"] = rule
	}
	return fx.d.GetSecret(context.Background(), pluginapi.Request{
		SecretName: "s-" + strings.ReplaceAll(v, "/", "-"), SecretLabels: labels,
		ServiceID: service, ServiceName: service, ServiceLabels: map[string]string{"team": team},
		TaskID: task, NodeID: "node1",
	})
}

// A service's first task fetches each of its variables once: its later
// Gets do not fetch again, in their batches, what its earlier Gets were just
// served (the service has taught nothing when the task starts).
func TestPrefetchFirstTaskFetchesEachVariableOnce(t *testing.T) {
	fx := newPrefetchFixture(t)
	for _, v := range []string{"a/v1", "a/v2", "a/v3"} {
		if r := fx.get("task1", "svc1", "a", v, ""); r.Err != "" {
			t.Fatal(r.Err)
		}
	}
	gets, manys := fx.f.fetches()
	if gets != 3 || manys != 0 {
		t.Errorf("the first task cost %d Gets and %d GetManys, want 3 and 0", gets, manys)
	}
	// The next task still gets the service's other variables in one batch.
	if r := fx.get("task2", "svc1", "a", "a/v1", ""); r.Err != "" {
		t.Fatal(r.Err)
	}
	fx.f.mu.Lock()
	defer fx.f.mu.Unlock()
	if len(fx.f.manys) != 1 || len(fx.f.manys[0]) != 3 {
		t.Errorf("task2's first Get sent %v, want one batch of its variable and the 2 others", fx.f.manys)
	}
}

// A service's first task teaches which variables it is allowed; a later
// task's first Get fetches them all in one batch, and its later Gets are
// served from it, each once, with prefetched: true in the audit line.
func TestPrefetchServesLaterGetsOfTheSameTask(t *testing.T) {
	fx := newPrefetchFixture(t)
	for _, v := range []string{"a/v1", "a/v2", "a/v3"} {
		if r := fx.get("task1", "svc1", "a", v, ""); r.Err != "" {
			t.Fatal(r.Err)
		}
	}
	gets0, manys0 := fx.f.fetches()
	for _, v := range []string{"a/v1", "a/v2", "a/v3"} {
		r := fx.get("task2", "svc1", "a", v, "")
		if r.Err != "" || !strings.HasPrefix(string(r.Value), v+"#") {
			t.Fatalf("task2 %s: %q, %s", v, r.Value, r.Err)
		}
		if owner := fx.f.owner[string(r.Value)]; owner != (taskKey{"task2", "svc1"}) {
			t.Errorf("task2 got a value fetched for %v", owner)
		}
	}
	gets, manys := fx.f.fetches()
	if gets != gets0 || manys != manys0+1 {
		t.Errorf("task2 cost %d Gets and %d GetManys, want 0 and 1", gets-gets0, manys-manys0)
	}
	if n := fx.logs.FilterField(zap.Bool("prefetched", true)).Len(); n != 2 {
		t.Errorf("%d audit lines say prefetched: true, want 2", n)
	}
}

// What is prefetched for a task is served to nothing else.
func TestPrefetchIsServedOnlyToItsTask(t *testing.T) {
	tests := []struct {
		name string
		then func(fx *prefetchFixture) pluginapi.Response // after task2's first Get (a/v1) prefetched a/v2
	}{
		{"ok/another task of the service", func(fx *prefetchFixture) pluginapi.Response { return fx.get("task3", "svc1", "a", "a/v2", "") }},
		{"ok/the same task id in another service", func(fx *prefetchFixture) pluginapi.Response { return fx.get("task2", "svc9", "a", "a/v2", "") }},
		{"ok/the same task under another rule", func(fx *prefetchFixture) pluginapi.Response { return fx.get("task2", "svc1", "a", "a/v2", "r2") }},
		{"ok/the same task after the TTL", func(fx *prefetchFixture) pluginapi.Response {
			fx.advance(DefaultPrefetchTTL)
			return fx.get("task2", "svc1", "a", "a/v2", "")
		}},
		{"ok/the same task a second time", func(fx *prefetchFixture) pluginapi.Response {
			fx.get("task2", "svc1", "a", "a/v2", "")
			return fx.get("task2", "svc1", "a", "a/v2", "")
		}},
		{"ok/the same task after Close", func(fx *prefetchFixture) pluginapi.Response {
			fx.d.Close()
			return fx.get("task2", "svc1", "a", "a/v2", "")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newPrefetchFixture(t)
			fx.get("task1", "svc1", "a", "a/v1", "")
			fx.get("task1", "svc1", "a", "a/v2", "")
			fx.get("task2", "svc1", "a", "a/v1", "") // prefetches a/v2 for task2
			r := tt.then(fx)
			if r.Err != "" {
				t.Fatal(r.Err)
			}
			if fx.logs.FilterField(zap.Bool("prefetched", true)).Len() != 0 && tt.name != "ok/the same task a second time" {
				t.Errorf("a prefetched value was served")
			}
			owner := fx.f.owner[string(r.Value)]
			want := fx.f.current
			if owner != want {
				t.Errorf("served a value fetched for %v to %v", owner, want)
			}
		})
	}
}

// The policy decides every Get: a variable prefetched for a task is not
// served to that task once the policy denies it.
func TestPrefetchNeverBypassesThePolicy(t *testing.T) {
	fx := newPrefetchFixture(t)
	fx.get("task1", "svc1", "a", "a/v1", "")
	fx.get("task1", "svc1", "a", "a/v2", "")
	fx.get("task2", "svc1", "a", "a/v1", "") // prefetches a/v2
	// task2's service now carries another team label: the policy denies a/v2.
	if r := fx.get("task2", "svc1", "b", "a/v2", ""); r.Err == "" || len(r.Value) != 0 {
		t.Fatalf("denied Get answered %q, %q", r.Value, r.Err)
	}
}

// With prefetch off, no Get fetches more than its own variable.
func TestPrefetchOff(t *testing.T) {
	f := newTagFetcher()
	d, err := New(Options{Resolver: teamResolver(), Conjur: f, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range []string{"t1", "t2"} {
		for _, v := range []string{"a/v1", "a/v2"} {
			d.GetSecret(context.Background(), pluginapi.Request{SecretName: "s", SecretLabels: map[string]string{"conjur.variable": v},
				ServiceID: "svc1", ServiceLabels: map[string]string{"team": "a"}, TaskID: task})
		}
	}
	if gets, manys := f.fetches(); gets != 4 || manys != 0 {
		t.Errorf("%d Gets and %d GetManys, want 4 and 0", gets, manys)
	}
}

// runInterleaving drives the driver with choices read from next: random
// tasks of random services asking for random variables (some denied) under
// one of two rules, with the clock moving; it fails t when a Get receives a
// value fetched for another task or service, or for another variable, or a
// value twice, or a value the policy denied.
func runInterleaving(t *testing.T, next func(n int) int, steps int) {
	fx := newPrefetchFixture(t)
	services := []struct{ id, team string }{{"svc1", "a"}, {"svc2", "a"}, {"svc3", "b"}}
	vars := []string{"a/v1", "a/v2", "a/v3", "b/v1", "b/v2"}
	served := map[string]bool{}
	for range steps {
		s := services[next(len(services))]
		task := fmt.Sprintf("task%d", next(6)) // task ids shared across services on purpose
		v := vars[next(len(vars))]
		rule := []string{"", "r2"}[next(2)]
		if next(4) == 0 {
			fx.advance(time.Duration(next(4)) * 2 * time.Second)
		}
		if next(50) == 0 {
			fx.d.Close()
		}
		r := fx.get(task, s.id, s.team, v, rule)
		allowed := strings.HasPrefix(v, s.team+"/")
		if !allowed {
			if len(r.Value) != 0 {
				t.Fatalf("denied Get of %s by %s/%s answered a value", v, s.id, task)
			}
			continue
		}
		if r.Err != "" {
			t.Fatalf("allowed Get failed: %s", r.Err)
		}
		got := string(r.Value)
		if owner := fx.f.owner[got]; owner != (taskKey{task, s.id}) {
			t.Fatalf("%s/%s asking %s got a value fetched for %v", s.id, task, v, owner)
		}
		if !strings.HasPrefix(got, v+"#") {
			t.Fatalf("%s/%s asking %s got %s's value", s.id, task, v, got)
		}
		if served[got] {
			t.Fatalf("value %s served twice", got)
		}
		served[got] = true
	}
}

func TestPrefetchPropertyRandomInterleavings(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 16))
		runInterleaving(t, func(n int) int { return rng.IntN(n) }, 300)
	}
}

func FuzzPrefetchInterleavings(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("task interleavings across services and rules"))
	f.Fuzz(func(t *testing.T, data []byte) {
		i := 0
		next := func(n int) int {
			if len(data) == 0 {
				return 0
			}
			b := data[i%len(data)]
			i++
			return int(b) % n
		}
		runInterleaving(t, next, min(4*len(data), 400))
	})
}
