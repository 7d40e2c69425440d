package rollout

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/swarmapi"
)

// PassResult says what one pass did.
type PassResult struct {
	Rollouts map[string]Rollout // by service name: started (or, dry-run, would have)
	Waiting  map[string]string  // by service name: a due rollout and why it waits
	Err      *Problem           // the pass failed: nothing was rolled out
}

// Pass looks at every opted-in service once and rolls out those whose
// variables changed. The first successful pass only records the versions.
// Its phases: observe (the policy, Docker and Conjur, without the lock),
// plan (the state, under the lock), roll out (Docker, without the lock),
// record (the state, under the lock).
func (a *Agent) Pass(ctx context.Context) PassResult {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	now := a.opts.Now()
	a.mu.Lock()
	a.lastPass = now
	a.mu.Unlock()

	obs, code, err := a.observe(ctx, now)
	if err != nil {
		return a.failed(code, err, now)
	}
	res, due := a.plan(obs, now)
	done := a.rollOut(ctx, due)
	a.record(&res, done)
	return res
}

// observation is what a pass read of the world: the opted-in services, by
// service ID what each reads and through which secrets, the versions in
// Conjur, and the problems to report.
type observation struct {
	optedIn   []swarmapi.Service // by name
	byService map[string][]Use
	reads     map[string]map[string]bool // service ID -> variable ids
	versions  map[string]int
	notes     map[string]Problem
}

// observe reads the mapping policy, the services and secrets, and the
// versions of the variables the opted-in services read. It holds no lock.
// A failure returns its code.
func (a *Agent) observe(ctx context.Context, now time.Time) (*observation, errcode.Code, error) {
	pol, err := a.opts.Policy()
	if err != nil {
		return nil, errcode.MappingInvalid, err
	}
	services, err := a.opts.Docker.Services(ctx)
	if err != nil {
		return nil, errcode.DockerUnavailable, err
	}
	secrets, err := a.opts.Docker.Secrets(ctx)
	if err != nil {
		return nil, errcode.DockerUnavailable, err
	}
	obs := &observation{byService: map[string][]Use{}, reads: map[string]map[string]bool{}, notes: map[string]Problem{}}
	for _, s := range services {
		if s.Labels[OptInLabel] == "true" {
			obs.optedIn = append(obs.optedIn, s)
		}
	}
	sort.Slice(obs.optedIn, func(i, j int) bool { return obs.optedIn[i].Name < obs.optedIn[j].Name })
	wanted := a.classify(obs, Uses(pol, a.opts.Drivers, obs.optedIn, secrets), now)
	if len(wanted) == 0 {
		return obs, "", nil
	}
	ids := make([]string, 0, len(wanted))
	for v := range wanted {
		ids = append(ids, v)
	}
	sort.Strings(ids)
	obs.versions, err = a.opts.Versions.Versions(ctx, a.opts.Account, ids)
	if err != nil {
		return nil, conjur.CodeOf(err), err
	}
	for _, id := range ids {
		if _, ok := obs.versions[id]; !ok {
			obs.note("var/"+id, errcode.NotVisible, now, fmt.Sprintf("variable %s: the agent's identity cannot see it or it has no value; grant the identity read on it (not execute); not watched", id))
		}
	}
	return obs, "", nil
}

func (o *observation) note(key string, code errcode.Code, now time.Time, msg string) {
	o.notes[key] = Problem{Code: code, Message: msg, Since: now}
}

// classify files each use under its service, notes the uses that are not
// watched and why, and returns the variables to ask Conjur for.
func (a *Agent) classify(obs *observation, uses []Use, now time.Time) map[string]bool {
	wanted := map[string]bool{}
	for _, u := range uses {
		obs.byService[u.Service.ID] = append(obs.byService[u.Service.ID], u)
		key := u.Service.ID + "/" + u.Secret.ID
		d := u.Decision
		switch {
		case u.NodeDependent:
			obs.note(key, errcode.NodeDependent, now, fmt.Sprintf("service %s, secret %s: rule %q reads the node, so its variable is not known per service; not watched (roll it by hand after a rotation)", u.Service.Name, u.Secret.Name, d.Rule))
			continue
		case !d.Allow:
			obs.note(key, errcode.Denied, now, fmt.Sprintf("service %s, secret %s: the mapping denies it (%s); not watched", u.Service.Name, u.Secret.Name, d.Reason))
			continue
		case d.Account != "" && d.Account != a.opts.Account:
			obs.note(key, errcode.OtherAccount, now, fmt.Sprintf("service %s, secret %s: the mapping names account %q, the agent's is %q (the plugin refuses it too); not watched", u.Service.Name, u.Secret.Name, d.Account, a.opts.Account))
			continue
		}
		if n := len(u.Variables()) - len(u.Watched()); n > 0 {
			obs.note(key, errcode.PinnedVersion, now, fmt.Sprintf("service %s, secret %s: rule %q pins the version of %d of its variables; a rotation does not change those, not watched", u.Service.Name, u.Secret.Name, d.Rule, n))
		}
		for _, v := range u.Watched() {
			if obs.reads[u.Service.ID] == nil {
				obs.reads[u.Service.ID] = map[string]bool{}
			}
			obs.reads[u.Service.ID][v] = true
			wanted[v] = true
		}
	}
	return wanted
}

// failed records a failed pass: nothing is rolled out, and the problem is
// logged when it is new.
func (a *Agent) failed(code errcode.Code, err error, now time.Time) PassResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := Problem{Code: code, Message: err.Error(), Since: now}
	if a.passErr != nil && a.passErr.Code == code && a.passErr.Message == p.Message {
		p.Since = a.passErr.Since
	} else {
		a.log.Error("rollout pass failed; nothing rolled out, retrying next pass",
			zap.String("code", string(code)), zap.Error(err), zap.Duration("retry_in", a.opts.Interval))
	}
	a.passErr = &p
	return PassResult{Rollouts: map[string]Rollout{}, Waiting: map[string]string{}, Err: &p}
}

// due is a rollout a pass is to start: the service, its state and the
// rollout.
type due struct {
	svc swarmapi.Service
	st  *serviceState
	r   Rollout
	err error // set by rollOut: the engine refused it
}

// plan brings the state up to date with obs under the lock: the problems,
// the services that left, and each service's versions. It returns the
// rollouts that are due and not blocked; those that wait are in the result.
func (a *Agent) plan(obs *observation, now time.Time) (PassResult, []*due) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res := PassResult{Rollouts: map[string]Rollout{}, Waiting: map[string]string{}}
	if a.passErr != nil {
		a.log.Info("rollout pass succeeded again", zap.String("after", string(a.passErr.Code)), zap.Duration("failing_for", now.Sub(a.passErr.Since)))
		a.passErr = nil
	}
	a.report(obs.notes)
	byID := map[string]bool{}
	for _, s := range obs.optedIn {
		byID[s.ID] = true
	}
	for id := range a.services {
		if !byID[id] {
			delete(a.services, id)
		}
	}
	var out []*due
	for _, svc := range obs.optedIn {
		st := a.serviceSeen(svc, obs)
		changes := a.changes(st)
		if len(changes) == 0 {
			st.pending = ""
			continue
		}
		if why := a.blocked(svc, st, now); why != "" {
			if st.pending != why {
				a.log.Info("rollout due but waiting", zap.String("service", svc.Name), zap.String("service_id", svc.ID),
					zap.Stringers("variables", changes), zap.String("waiting_for", why))
			}
			st.pending = why
			res.Waiting[svc.Name] = why
			continue
		}
		out = append(out, &due{svc: svc, st: st, r: Rollout{At: now, Changes: changes, Reason: reason(changes), DryRun: a.opts.DryRun}})
	}
	return res, out
}

// serviceSeen updates (or starts) svc's state with what obs read of it. The
// caller holds mu.
func (a *Agent) serviceSeen(svc swarmapi.Service, obs *observation) *serviceState {
	st := a.services[svc.ID]
	if st == nil {
		st = &serviceState{id: svc.ID, rolled: map[string]int{}}
		a.services[svc.ID] = st
	}
	st.name, st.uses = svc.Name, obs.byService[svc.ID]
	st.current = map[string]int{}
	for v := range obs.reads[svc.ID] {
		if ver, ok := obs.versions[v]; ok {
			st.current[v] = ver
		}
	}
	for v := range st.rolled {
		if !obs.reads[svc.ID][v] {
			delete(st.rolled, v) // no longer read: forget it
		}
	}
	return st
}

// changes returns st's variables whose version moved since its tasks were
// started, by id; a variable seen for the first time (or before the first
// pass completed) is only recorded. The caller holds mu.
func (a *Agent) changes(st *serviceState) []Change {
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
	sort.Slice(changes, func(i, j int) bool { return changes[i].Variable < changes[j].Variable })
	return changes
}

// rollOut starts each due rollout (a forced update; none in dry-run mode)
// without the lock, and logs what happened.
func (a *Agent) rollOut(ctx context.Context, dues []*due) []*due {
	for _, d := range dues {
		if !a.opts.DryRun {
			warnings, err := a.opts.Docker.ForceUpdate(ctx, d.svc.ID, d.svc.Version)
			if err != nil {
				d.err = err
				a.log.Error("rollout failed; retrying next pass", zap.String("code", string(errcode.UpdateFailed)),
					zap.String("service", d.svc.Name), zap.String("service_id", d.svc.ID),
					zap.Stringers("variables", d.r.Changes), zap.Error(err))
				continue
			}
			for _, w := range warnings {
				a.log.Warn("docker engine warning on rollout", zap.String("service", d.svc.Name), zap.String("warning", w))
			}
		}
		a.log.Info("rollout", zap.String("service", d.svc.Name), zap.String("service_id", d.svc.ID),
			zap.Stringers("variables", d.r.Changes), zap.String("reason", d.r.Reason), zap.Bool("dry_run", d.r.DryRun))
	}
	return dues
}

// record keeps what rollOut did under the lock: a refused update waits for
// the next pass, a started one raises the versions its tasks get.
func (a *Agent) record(res *PassResult, dues []*due) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range dues {
		if d.err != nil {
			why := fmt.Sprintf("%s: the engine refused the update: %v", errcode.UpdateFailed, d.err)
			d.st.pending = why
			res.Waiting[d.svc.Name] = why
			continue
		}
		for _, c := range d.r.Changes {
			d.st.rolled[c.Variable] = c.To
		}
		r := d.r
		d.st.last, d.st.pending = &r, ""
		res.Rollouts[d.svc.Name] = r
	}
	a.primed = true
}
