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
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
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

// Code is a stable kind of problem the agent logs and reports.
type Code string

// The codes; the comment says when.
const (
	// CodeMappingInvalid: the mapping file cannot be read or parsed; the pass is skipped.
	CodeMappingInvalid Code = "MAPPING_INVALID"
	// CodeDockerUnavailable: listing services or secrets failed; the pass is skipped.
	CodeDockerUnavailable Code = "DOCKER_UNAVAILABLE"
	// CodeUpdateFailed: the engine refused a forced update; it is retried next pass.
	CodeUpdateFailed Code = "UPDATE_FAILED"
	// CodeUpdatePaused: the service's last update is paused; the rollout waits for the operator.
	CodeUpdatePaused Code = "UPDATE_PAUSED"
	// CodeNodeDependent: a secret's rule reads the node; it is not watched.
	CodeNodeDependent Code = "NODE_DEPENDENT"
	// CodeDenied: the mapping denies the secret to the service; it is not watched.
	CodeDenied Code = "DENIED"
	// CodePinned: the rule pins a version; a rotation does not change what the task gets.
	CodePinned Code = "PINNED_VERSION"
	// CodeOtherAccount: the mapping names another Conjur account than the agent's (the plugin refuses it too).
	CodeOtherAccount Code = "OTHER_ACCOUNT"
	// CodeNotVisible: the agent's identity cannot see the variable (grant it read) or it has no value yet.
	CodeNotVisible Code = "NOT_VISIBLE"
)

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

// Agent is the rollout agent. Pass and Status are safe for concurrent use.
type Agent struct {
	opts Options
	log  *zap.Logger

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
	Code    Code      `json:"code"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
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

// PassResult says what one pass did.
type PassResult struct {
	Rollouts map[string]Rollout // by service name: started (or, dry-run, would have)
	Waiting  map[string]string  // by service name: a due rollout and why it waits
	Err      *Problem           // the pass failed: nothing was rolled out
}

// Pass looks at every opted-in service once and rolls out those whose
// variables changed. The first successful pass only records the versions.
func (a *Agent) Pass(ctx context.Context) PassResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Now()
	a.lastPass = now
	res := PassResult{Rollouts: map[string]Rollout{}, Waiting: map[string]string{}}

	fail := func(code Code, err error) PassResult {
		p := Problem{Code: code, Message: err.Error(), Since: now}
		if a.passErr != nil && a.passErr.Code == code && a.passErr.Message == p.Message {
			p.Since = a.passErr.Since
		} else {
			a.log.Error("rollout pass failed; nothing rolled out, retrying next pass",
				zap.String("code", string(code)), zap.Error(err), zap.Duration("retry_in", a.opts.Interval))
		}
		a.passErr = &p
		res.Err = &p
		return res
	}

	pol, err := a.opts.Policy()
	if err != nil {
		return fail(CodeMappingInvalid, err)
	}
	services, err := a.opts.Docker.Services(ctx)
	if err != nil {
		return fail(CodeDockerUnavailable, err)
	}
	secrets, err := a.opts.Docker.Secrets(ctx)
	if err != nil {
		return fail(CodeDockerUnavailable, err)
	}
	var optedIn []swarmapi.Service
	for _, s := range services {
		if s.Labels[OptInLabel] == "true" {
			optedIn = append(optedIn, s)
		}
	}
	sort.Slice(optedIn, func(i, j int) bool { return optedIn[i].Name < optedIn[j].Name })
	uses := Uses(pol, a.opts.Drivers, optedIn, secrets)

	// What each service reads, and the problems to report once.
	notes := map[string]Problem{}
	note := func(key string, code Code, msg string) {
		notes[key] = Problem{Code: code, Message: msg, Since: now}
	}
	reads := map[string]map[string]bool{} // service ID -> variable ids
	byService := map[string][]Use{}
	wanted := map[string]bool{}
	for _, u := range uses {
		byService[u.Service.ID] = append(byService[u.Service.ID], u)
		key := u.Service.ID + "/" + u.Secret.ID
		d := u.Decision
		switch {
		case u.NodeDependent:
			note(key, CodeNodeDependent, fmt.Sprintf("service %s, secret %s: rule %q reads the node, so its variable is not known per service; not watched (roll it by hand after a rotation)", u.Service.Name, u.Secret.Name, d.Rule))
			continue
		case !d.Allow:
			note(key, CodeDenied, fmt.Sprintf("service %s, secret %s: the mapping denies it (%s); not watched", u.Service.Name, u.Secret.Name, d.Reason))
			continue
		case d.Account != "" && d.Account != a.opts.Account:
			note(key, CodeOtherAccount, fmt.Sprintf("service %s, secret %s: the mapping names account %q, the agent's is %q (the plugin refuses it too); not watched", u.Service.Name, u.Secret.Name, d.Account, a.opts.Account))
			continue
		}
		if n := len(u.Variables()) - len(u.Watched()); n > 0 {
			note(key, CodePinned, fmt.Sprintf("service %s, secret %s: rule %q pins the version of %d of its variables; a rotation does not change those, not watched", u.Service.Name, u.Secret.Name, d.Rule, n))
		}
		for _, v := range u.Watched() {
			if reads[u.Service.ID] == nil {
				reads[u.Service.ID] = map[string]bool{}
			}
			reads[u.Service.ID][v] = true
			wanted[v] = true
		}
	}

	var versions map[string]int
	if len(wanted) > 0 {
		ids := make([]string, 0, len(wanted))
		for v := range wanted {
			ids = append(ids, v)
		}
		sort.Strings(ids)
		versions, err = a.opts.Versions.Versions(ctx, a.opts.Account, ids)
		if err != nil {
			return fail(Code("CONJUR_"+string(conjur.CodeOf(err))), err)
		}
		for _, id := range ids {
			if _, ok := versions[id]; !ok {
				note("var/"+id, CodeNotVisible, fmt.Sprintf("variable %s: the agent's identity cannot see it or it has no value; grant the identity read on it (not execute); not watched", id))
			}
		}
	}
	if a.passErr != nil {
		a.log.Info("rollout pass succeeded again", zap.String("after", string(a.passErr.Code)), zap.Duration("failing_for", now.Sub(a.passErr.Since)))
		a.passErr = nil
	}
	a.report(notes)

	byID := map[string]swarmapi.Service{}
	for _, s := range optedIn {
		byID[s.ID] = s
	}
	for id := range a.services {
		if _, ok := byID[id]; !ok {
			delete(a.services, id)
		}
	}
	for _, svc := range optedIn {
		st := a.services[svc.ID]
		if st == nil {
			st = &serviceState{id: svc.ID, rolled: map[string]int{}}
			a.services[svc.ID] = st
		}
		st.name, st.uses = svc.Name, byService[svc.ID]
		st.current = map[string]int{}
		for v := range reads[svc.ID] {
			if ver, ok := versions[v]; ok {
				st.current[v] = ver
			}
		}
		for v := range st.rolled {
			if !reads[svc.ID][v] {
				delete(st.rolled, v) // no longer read: forget it
			}
		}
		var changes []Change
		for v, ver := range st.current {
			prev, known := st.rolled[v]
			switch {
			case !known || !a.primed:
				st.rolled[v] = ver // first sight: the running tasks were started with what is current
			case ver != prev:
				changes = append(changes, Change{Variable: v, From: prev, To: ver})
			}
		}
		if len(changes) == 0 {
			st.pending = ""
			continue
		}
		sort.Slice(changes, func(i, j int) bool { return changes[i].Variable < changes[j].Variable })
		if why := a.blocked(svc, st, now); why != "" {
			if st.pending != why {
				a.log.Info("rollout due but waiting", zap.String("service", svc.Name), zap.String("service_id", svc.ID),
					zap.Stringers("variables", changes), zap.String("waiting_for", why))
			}
			st.pending = why
			res.Waiting[svc.Name] = why
			continue
		}
		r := Rollout{At: now, Changes: changes, Reason: reason(changes), DryRun: a.opts.DryRun}
		if !a.opts.DryRun {
			warnings, err := a.opts.Docker.ForceUpdate(ctx, svc.ID, svc.Version)
			if err != nil {
				why := fmt.Sprintf("%s: the engine refused the update: %v", CodeUpdateFailed, err)
				a.log.Error("rollout failed; retrying next pass", zap.String("code", string(CodeUpdateFailed)),
					zap.String("service", svc.Name), zap.String("service_id", svc.ID),
					zap.Stringers("variables", changes), zap.Error(err))
				st.pending = why
				res.Waiting[svc.Name] = why
				continue
			}
			for _, w := range warnings {
				a.log.Warn("docker engine warning on rollout", zap.String("service", svc.Name), zap.String("warning", w))
			}
		}
		a.log.Info("rollout", zap.String("service", svc.Name), zap.String("service_id", svc.ID),
			zap.Stringers("variables", changes), zap.String("reason", r.Reason), zap.Bool("dry_run", r.DryRun))
		for _, c := range changes {
			st.rolled[c.Variable] = c.To
		}
		st.last, st.pending = &r, ""
		res.Rollouts[svc.Name] = r
	}
	a.primed = true
	return res
}

// blocked returns why a due rollout of svc must wait, or "".
func (a *Agent) blocked(svc swarmapi.Service, st *serviceState, now time.Time) string {
	u := svc.Update
	switch {
	case u.State.InProgress():
		return fmt.Sprintf("the service is %s (since %s)", u.State, u.StartedAt.UTC().Format(time.RFC3339))
	case u.State.Paused():
		key := "paused/" + svc.ID
		if _, ok := a.notes[key]; !ok {
			a.log.Warn("rollout due but the service's last update is paused; resolve it (docker service update or rollback) and the agent rolls it out",
				zap.String("code", string(CodeUpdatePaused)), zap.String("service", svc.Name), zap.String("message", u.Message))
			a.notes[key] = Problem{Code: CodeUpdatePaused, Message: u.Message, Since: now}
		}
		return fmt.Sprintf("%s: the service's last update is %s (%s)", CodeUpdatePaused, u.State, u.Message)
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
// those that cleared (so a recurring one is logged again).
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
