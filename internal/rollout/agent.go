// Package rollout is the rollout agent: it watches the Conjur versions of
// the variables that opted-in services read through the secret driver, and
// starts a rolling update of a service when one of them changes, so that
// its new tasks fetch the new value. It reads version metadata only, never a
// value, and it never runs inside the plugin (the plugin has no Docker
// socket).
//
// The decisions (which services, when, what to log) live here; the Docker
// Engine, Conjur and the mapping policy come in through small interfaces, so
// that tests drive the agent with fakes and a fake clock.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/swarmapi"
)

// OptInLabel is the service label that opts a service in: conjur.rollout=true.
const OptInLabel = "conjur.rollout"

// Defaults of the options.
const (
	DefaultInterval    = 30 * time.Second
	DefaultMinGap      = 2 * time.Minute
	DefaultPassTimeout = 60 * time.Second
)

// Docker is what the agent needs of the Docker Engine API.
type Docker interface {
	Services(ctx context.Context) ([]swarmapi.Service, error)
	Secrets(ctx context.Context) ([]swarmapi.Secret, error)
	ForceUpdate(ctx context.Context, id string, version uint64) ([]string, error)
}

// VersionSource reads variable versions from Conjur's resource metadata.
type VersionSource interface {
	// Versions returns the current version of each of the variable ids (of
	// account) that the identity can see; an id it cannot see, or that has
	// no value yet, is absent from the map.
	Versions(ctx context.Context, account string, ids []string) (map[string]int, error)
}

// Options configure an Agent.
type Options struct {
	Docker   Docker
	Versions VersionSource
	// Policy returns the mapping policy in force; it is called once per pass.
	Policy func() (*policy.Policy, error)
	// Account is the agent's Conjur account (CONJUR_ACCOUNT).
	Account string
	// Drivers are the secret driver names whose secrets are the plugin's.
	Drivers Drivers
	// Interval between passes (default 30s).
	Interval time.Duration
	// MinGap is the least time between two rollouts of one service (default 2m).
	MinGap time.Duration
	// PassTimeout bounds one pass (default 60s).
	PassTimeout time.Duration
	// DryRun logs what the agent would do and changes nothing.
	DryRun bool
	Logger *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Agent is the rollout agent. Pass and Status are safe for concurrent use:
// passes run one at a time, and a pass holds mu only to read and write the
// state below, never across a call to Docker, Conjur or the policy, so
// that Status answers while a pass waits on them.
type Agent struct {
	opts Options
	log  *zap.Logger

	passMu sync.Mutex // one pass at a time; Status never takes it

	mu       sync.Mutex // guards everything below
	primed   bool       // a pass has recorded the versions
	started  time.Time
	lastPass time.Time
	passErr  *Problem
	services map[string]*serviceState // by service ID
	notes    map[string]Problem       // problems logged once, by key
}

// serviceState is what the agent knows of one watched service.
type serviceState struct {
	id, name string
	uses     []Use
	// rolled is the version of each variable the service's tasks were
	// started with, as far as the agent knows: recorded at first sight,
	// raised by each rollout.
	rolled  map[string]int
	current map[string]int
	pending string // why a due rollout waits ("" = none due)
	last    *Rollout
}

// Rollout is one forced update the agent started (or, dry-run, would have).
type Rollout struct {
	At      time.Time `json:"at"`
	Changes []Change  `json:"changes"`
	Reason  string    `json:"reason"`
	DryRun  bool      `json:"dry_run,omitempty"`
}

// Change is one variable whose version changed.
type Change struct {
	Variable string `json:"variable"`
	From     int    `json:"from"`
	To       int    `json:"to"`
}

func (c Change) String() string { return fmt.Sprintf("%s %d->%d", c.Variable, c.From, c.To) }

// Problem is a coded problem with when it was first seen.
type Problem struct {
	Code    errcode.Code `json:"code"`
	Message string       `json:"message"`
	Since   time.Time    `json:"since"`
}

// New checks the options and returns an Agent.
func New(opts Options) (*Agent, error) {
	var errs []error
	if opts.Docker == nil {
		errs = append(errs, errors.New("rollout-agent: no Docker client"))
	}
	if opts.Versions == nil {
		errs = append(errs, errors.New("rollout-agent: no Conjur client"))
	}
	if opts.Policy == nil {
		errs = append(errs, errors.New("rollout-agent: no mapping policy"))
	}
	if opts.Account == "" {
		errs = append(errs, errors.New("rollout-agent: the Conjur account is empty (CONJUR_ACCOUNT)"))
	}
	if len(opts.Drivers) == 0 {
		errs = append(errs, errors.New("rollout-agent: no secret driver name (--driver)"))
	}
	if opts.Interval < 0 || opts.MinGap < 0 || opts.PassTimeout < 0 {
		errs = append(errs, errors.New("rollout-agent: --interval, --min-gap and the pass timeout must not be negative"))
	}
	if opts.Logger == nil {
		errs = append(errs, errors.New("rollout-agent: no logger"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MinGap == 0 {
		opts.MinGap = DefaultMinGap
	}
	if opts.PassTimeout == 0 {
		opts.PassTimeout = DefaultPassTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Agent{
		opts:     opts,
		log:      opts.Logger,
		started:  opts.Now(),
		services: map[string]*serviceState{},
		notes:    map[string]Problem{},
	}, nil
}

// Run makes a pass at once and then every Interval until ctx is done, and
// returns ctx.Err().
func (a *Agent) Run(ctx context.Context) error {
	t := time.NewTicker(a.opts.Interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, a.opts.PassTimeout)
		a.Pass(pctx)
		cancel()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// blocked returns why a due rollout of svc must wait, or "". The caller
// holds mu.
func (a *Agent) blocked(svc swarmapi.Service, st *serviceState, now time.Time) string {
	u := svc.Update
	switch {
	case u.State.InProgress():
		return fmt.Sprintf("the service is %s (since %s)", u.State, u.StartedAt.UTC().Format(time.RFC3339))
	case u.State.Paused():
		key := "paused/" + svc.ID
		if _, ok := a.notes[key]; !ok {
			a.log.Warn("rollout due but the service's last update is paused; resolve it (docker service update or rollback) and the agent rolls it out",
				zap.String("code", string(errcode.UpdatePaused)), zap.String("service", svc.Name), zap.String("message", u.Message))
			a.notes[key] = Problem{Code: errcode.UpdatePaused, Message: u.Message, Since: now}
		}
		return fmt.Sprintf("%s: the service's last update is %s (%s)", errcode.UpdatePaused, u.State, u.Message)
	}
	delete(a.notes, "paused/"+svc.ID)
	// The last rollout of this service: the agent's own, or the engine's
	// record of the last update (which survives a restart of the agent).
	last := u.StartedAt
	if st.last != nil && st.last.At.After(last) {
		last = st.last.At
	}
	if !last.IsZero() && now.Sub(last) < a.opts.MinGap {
		return fmt.Sprintf("min-gap: the service was last updated at %s, next rollout from %s",
			last.UTC().Format(time.RFC3339), last.Add(a.opts.MinGap).UTC().Format(time.RFC3339))
	}
	return ""
}

// report logs the problems that are new since the last pass and forgets
// those that cleared (so a recurring one is logged again). The caller holds
// mu.
func (a *Agent) report(notes map[string]Problem) {
	for key := range a.notes {
		if strings.HasPrefix(key, "paused/") {
			continue // kept by blocked
		}
		if _, ok := notes[key]; !ok {
			delete(a.notes, key)
		}
	}
	for key, p := range notes {
		if old, ok := a.notes[key]; ok && old.Message == p.Message {
			continue
		}
		a.log.Warn(p.Message, zap.String("code", string(p.Code)))
		a.notes[key] = p
	}
}

func reason(changes []Change) string {
	for _, c := range changes {
		if c.To < c.From {
			return "a variable's version changed (lower: the variable was re-created)"
		}
	}
	return "a variable's version rose"
}
