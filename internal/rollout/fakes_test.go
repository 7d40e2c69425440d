package rollout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/swarmapi"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeDocker is an in-memory swarm: services, secrets, and forced updates
// that start an "updating" state the test completes by hand. Fail* switches
// make the next calls fail.
type fakeDocker struct {
	clock *clock

	mu          sync.Mutex
	services    map[string]*swarmapi.Service
	secrets     []swarmapi.Secret
	updates     []string // service names, in the order updated
	FailList    error
	FailUpdate  error
	listedCalls chan struct{} // when set, receives on every Services call
}

func newFakeDocker(c *clock) *fakeDocker {
	return &fakeDocker{clock: c, services: map[string]*swarmapi.Service{}}
}

func (d *fakeDocker) addSecret(id, name, driver string, labels map[string]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.secrets = append(d.secrets, swarmapi.Secret{ID: id, Name: name, Driver: driver, Labels: labels})
}

// addService adds a service reading the given secret IDs; optIn sets
// conjur.rollout=true.
func (d *fakeDocker) addService(name string, optIn bool, secretIDs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &swarmapi.Service{ID: "id-" + name, Version: 10, Name: name, Image: "app:1", Labels: map[string]string{}}
	if optIn {
		s.Labels[OptInLabel] = "true"
	}
	for _, id := range secretIDs {
		s.Secrets = append(s.Secrets, swarmapi.SecretRef{SecretID: id, SecretName: id, Target: id})
	}
	d.services[s.ID] = s
}

// complete ends the service's update.
func (d *fakeDocker) complete(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.services["id-"+name]
	s.Update.State, s.Update.CompletedAt = swarmapi.UpdateCompleted, d.clock.Now()
}

func (d *fakeDocker) setState(name string, st swarmapi.UpdateState, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.services["id-"+name]
	s.Update.State, s.Update.Message = st, msg
	s.Update.StartedAt = d.clock.Now()
	s.Version++
}

func (d *fakeDocker) forceUpdates(name string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.services["id-"+name].ForceUpdate
}

func (d *fakeDocker) updated() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.updates...)
}

func (d *fakeDocker) Services(context.Context) ([]swarmapi.Service, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listedCalls != nil {
		select {
		case d.listedCalls <- struct{}{}:
		default:
		}
	}
	if d.FailList != nil {
		return nil, d.FailList
	}
	var out []swarmapi.Service
	for _, s := range d.services {
		out = append(out, *s)
	}
	return out, nil
}

func (d *fakeDocker) Secrets(context.Context) ([]swarmapi.Secret, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.FailList != nil {
		return nil, d.FailList
	}
	return append([]swarmapi.Secret(nil), d.secrets...), nil
}

func (d *fakeDocker) ForceUpdate(_ context.Context, id string, version uint64) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.FailUpdate != nil {
		return nil, d.FailUpdate
	}
	s, ok := d.services[id]
	if !ok {
		return nil, &swarmapi.Error{Op: "POST /services/" + id + "/update", Status: http.StatusNotFound, Message: "service not found"}
	}
	if s.Version != version {
		return nil, &swarmapi.Error{Op: "POST /services/" + id + "/update", Status: http.StatusConflict, Message: "update out of sequence"}
	}
	s.ForceUpdate++
	s.Version++
	s.Update = swarmapi.UpdateStatus{State: swarmapi.UpdateUpdating, StartedAt: d.clock.Now()}
	d.updates = append(d.updates, s.Name)
	return nil, nil
}

// fakeConjur holds variable versions; Fail makes calls fail. It records the
// requests it got.
type fakeConjur struct {
	mu       sync.Mutex
	versions map[string]int
	Fail     error
	calls    [][]string
}

func (c *fakeConjur) set(id string, v int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.versions[id] = v
}

func (c *fakeConjur) Versions(_ context.Context, account string, ids []string) (map[string]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, append([]string(nil), ids...))
	if c.Fail != nil {
		return nil, c.Fail
	}
	if account != "myorg" {
		return nil, fmt.Errorf("fake Conjur: unexpected account %q", account)
	}
	out := map[string]int{}
	for _, id := range ids {
		if v, ok := c.versions[id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

// mappingSource is a mapping file the tests can break.
type mappingSource struct {
	mu     sync.Mutex
	policy *policy.Policy
	broken bool
}

func (m *mappingSource) load() (*policy.Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.broken {
		return nil, errors.New("mapping.yml:3:1: rules must be a list")
	}
	return m.policy, nil
}
