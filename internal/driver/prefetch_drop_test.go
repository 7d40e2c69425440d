package driver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjur/conjurtest"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// conjurStub is a Conjur side whose answer for each variable the test
// sets: a value, or a refusal code. It records the ids of every fetch
// (Get or GetMany); adoption and status are conjurtest.Fake's.
type conjurStub struct {
	conjurtest.Fake

	mu      sync.Mutex
	values  map[string]string
	refuse  map[string]errcode.Code
	fetches [][]string // ids of each Get (one) and GetMany
}

func newConjurStub(values map[string]string) *conjurStub {
	return &conjurStub{values: values, refuse: map[string]errcode.Code{}}
}

func (c *conjurStub) answerLocked(ref conjur.Ref) (conjur.Value, error) {
	if code, ok := c.refuse[ref.ID]; ok {
		return conjur.Value{}, &conjur.Error{Code: code, Variable: ref.ID, Msg: "refused by the stub"}
	}
	v, ok := c.values[ref.ID]
	if !ok {
		return conjur.Value{}, &conjur.Error{Code: errcode.NotFound, Variable: ref.ID, Msg: "no such variable in the stub"}
	}
	return conjur.Value{Data: []byte(v)}, nil
}

func (c *conjurStub) Get(_ context.Context, ref conjur.Ref) (conjur.Value, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fetches = append(c.fetches, []string{ref.ID})
	return c.answerLocked(ref)
}

func (c *conjurStub) GetMany(_ context.Context, refs []conjur.Ref) []conjur.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]conjur.Result, len(refs))
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
		out[i].Value, out[i].Err = c.answerLocked(r)
	}
	c.fetches = append(c.fetches, ids)
	return out
}

func (c *conjurStub) set(id, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.values[id] = value
	delete(c.refuse, id)
}

func (c *conjurStub) refuseWith(id string, code errcode.Code) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuse[id] = code
}

// fetchedSince returns the ids of every fetch after the first n.
func (c *conjurStub) fetchedSince(n int) [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.fetches[n:])
}

func (c *conjurStub) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.fetches)
}

// mappingResolver allows every conjur.variable label under rule r1 of a
// mapping whose hash the test changes.
type mappingResolver struct {
	mu   sync.Mutex
	hash string
}

func (m *mappingResolver) Resolve(r policy.Request) policy.Decision {
	m.mu.Lock()
	defer m.mu.Unlock()
	return policy.Decision{Allow: true, Rule: "r1", Variable: r.SecretLabels["conjur.variable"], DoNotReuse: true, Mapping: m.hash}
}

func (m *mappingResolver) reload(hash string) {
	m.mu.Lock()
	m.hash = hash
	m.mu.Unlock()
}

// stubDriver is a driver with prefetch on over stub, deciding with res.
func stubDriver(t *testing.T, stub *conjurStub, res Resolver) *Driver {
	t.Helper()
	d, err := New(Options{Resolver: res, Conjur: stub, Logger: zap.NewNop(), Prefetch: true,
		Account: "dev", ApplianceURLs: []string{"https://conjur.test"}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func stubGet(d *Driver, task, v string) pluginapi.Response { return stubGetAs(d, "svc1", task, v) }

// stubGetAs asks for v for task of service.
func stubGetAs(d *Driver, service, task, v string) pluginapi.Response {
	return d.GetSecret(context.Background(), pluginapi.Request{
		SecretName: "s-" + strings.ReplaceAll(v, "/", "-"), SecretLabels: map[string]string{"conjur.variable": v},
		ServiceID: service, ServiceName: service, TaskID: task, NodeID: "node1",
	})
}

// prefetchA2 teaches svc1 a/v1 and a/v2 (task1) and has task2's first Get
// (a/v1) prefetch a/v2; it returns the fetch count after that.
func prefetchA2(t *testing.T, d *Driver, stub *conjurStub) int {
	t.Helper()
	for _, g := range [][2]string{{"task1", "a/v1"}, {"task1", "a/v2"}, {"task2", "a/v1"}} {
		if r := stubGet(d, g[0], g[1]); r.Err != "" {
			t.Fatalf("%s %s: %s", g[0], g[1], r.Err)
		}
	}
	last := stub.fetchedSince(stub.count() - 1)[0]
	if !slices.Equal(last, []string{"a/v1", "a/v2"}) {
		t.Fatalf("task2's first Get fetched %v, want a/v1 with a/v2 prefetched", last)
	}
	return stub.count()
}

// A value prefetched for a task is not served once it may no longer be
// Conjur's answer (issue 21 item 7): another fetch saw the variable change
// (a rotation) or refused (a revocation), or the mapping changed. The task's
// Get then fetches anew and gets what Conjur answers now.
func TestPrefetchedValueDroppedWhenItMayBeOutdated(t *testing.T) {
	tests := []struct {
		name    string
		change  func(stub *conjurStub, res *mappingResolver, d *Driver)
		want    string // value task2's Get of a/v2 gets, or "[CODE]"
		fetched bool   // whether that Get reaches Conjur (else served from prefetch)
	}{
		{"ok/unchanged: served from prefetch", func(*conjurStub, *mappingResolver, *Driver) {}, "v2-old", false},
		{"ok/rotated, seen by another task's prefetch batch", func(stub *conjurStub, _ *mappingResolver, d *Driver) {
			stub.set("a/v2", "v2-new")
			stubGet(d, "task3", "a/v2") // task3's first Get: a/v2 with a/v1 prefetched
		}, "v2-new", true},
		{"ok/rotated, seen by another service's single Get", func(stub *conjurStub, _ *mappingResolver, d *Driver) {
			stub.set("a/v2", "v2-new")
			stubGetAs(d, "svc2", "task9", "a/v2") // svc2 has nothing to prefetch
		}, "v2-new", true},
		{"fail/FORBIDDEN: execute revoked, seen by another service's single Get", func(stub *conjurStub, _ *mappingResolver, d *Driver) {
			stub.refuseWith("a/v2", errcode.Forbidden)
			stubGetAs(d, "svc2", "task9", "a/v2")
		}, "[FORBIDDEN]", true},
		{"fail/NOT_FOUND: deleted, seen by a prefetch batch", func(stub *conjurStub, _ *mappingResolver, d *Driver) {
			stub.refuseWith("a/v2", errcode.NotFound)
			stubGet(d, "task3", "a/v1") // prefetches a/v2 for task3: refused
		}, "[NOT_FOUND]", true},
		{"ok/mapping reloaded", func(_ *conjurStub, res *mappingResolver, _ *Driver) { res.reload("sha256:two") }, "v2-old", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stub := newConjurStub(map[string]string{"a/v1": "v1-old", "a/v2": "v2-old"})
			res := &mappingResolver{hash: "sha256:one"}
			d := stubDriver(t, stub, res)
			prefetchA2(t, d, stub)
			tc.change(stub, res, d)
			before := stub.count()
			r := stubGet(d, "task2", "a/v2")
			got := string(r.Value)
			if r.Err != "" {
				got = r.Err
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("task2's Get of a/v2 answered %q, want %s", got, tc.want)
			}
			if fetched := stub.count() > before; fetched != tc.fetched {
				t.Errorf("task2's Get of a/v2 reached Conjur: %t, want %t", fetched, tc.fetched)
			}
		})
	}
}

// A variable Conjur refuses leaves the service's prefetch set (issue 21
// item 8): later tasks' first Gets do not wait for it; once it is served
// again it is prefetched again.
func TestPrefetchForgetsARefusedVariable(t *testing.T) {
	for _, code := range []errcode.Code{errcode.Forbidden, errcode.NotFound} {
		t.Run(fmt.Sprintf("ok/%s", code), func(t *testing.T) {
			stub := newConjurStub(map[string]string{"a/v1": "v1", "a/v2": "v2"})
			d := stubDriver(t, stub, &mappingResolver{hash: "sha256:one"})
			stubGet(d, "task1", "a/v1")
			stubGet(d, "task1", "a/v2")
			stub.refuseWith("a/v2", code)
			stubGet(d, "task2", "a/v1") // its batch holds a/v2: refused
			n := stub.count()
			stubGet(d, "task3", "a/v1")
			if got := stub.fetchedSince(n); fmt.Sprint(got) != "[[a/v1]]" {
				t.Fatalf("task3's first Get fetched %v, want a/v1 alone", got)
			}
			stub.set("a/v2", "v2")
			stubGet(d, "task4", "a/v2") // served again: learned again
			n = stub.count()
			stubGet(d, "task5", "a/v1")
			if got := stub.fetchedSince(n); len(got) != 1 || !slices.Contains(got[0], "a/v2") {
				t.Fatalf("task5's first Get fetched %v, want a/v2 prefetched again", got)
			}
		})
	}
}

// An accepted handoff wipes what was prefetched under the credential before
// (issue 21 item 13's mutant "prefetched values not wiped on a credential
// handoff"): the task's later Get fetches with the new credential.
func TestPrefetchedValuesWipedOnAcceptedHandoff(t *testing.T) {
	stub := newConjurStub(map[string]string{"a/v1": "v1", "a/v2": "v2"})
	d := stubDriver(t, stub, &mappingResolver{hash: "sha256:one"})
	prefetchA2(t, d, stub)
	ans, status := d.Bootstrap(context.Background(), strings.NewReader(
		`{"login":"host/swarm/conjur-plugin","api_key":"key-dddd-4444","account":"dev","appliance_url":"https://conjur.test"}`))
	if !ans.OK {
		t.Fatalf("handoff refused (%d): %s", status, ans.Err)
	}
	n := stub.count()
	if r := stubGet(d, "task2", "a/v2"); r.Err != "" || string(r.Value) != "v2" {
		t.Fatalf("task2's Get of a/v2 after the handoff: %q %s", r.Value, r.Err)
	}
	if got := stub.fetchedSince(n); len(got) == 0 || got[0][0] != "a/v2" {
		t.Fatalf("after the handoff task2's Get of a/v2 fetched %v: want a/v2 fetched anew, not the value prefetched before", got)
	}
}
