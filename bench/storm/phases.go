package main

import (
	"context"
	"fmt"
	"time"
)

// latencyPhase times one call at a time, server latency 0, warm token, and
// prints the figures.
func latencyPhase(ctx context.Context, o options, f *fleet) (latencies, error) {
	fmt.Printf("latency: %d sequential calls of each kind, warm token, server latency 0\n", o.samples)
	lat, err := measureLatency(ctx, f, o.samples)
	if err != nil {
		return latencies{}, err
	}
	for _, l := range []struct {
		name string
		p    percentiles
	}{
		{"direct conjur-api-go fetch", lat.direct},
		{"conjur.Client Get alone", lat.client},
		{"GetSecret, null driver", lat.socket},
		{"GetSecret, plugin", lat.plugin},
	} {
		fmt.Printf("  %-27s p50 %s  p90 %s  p99 %s\n", l.name, us(l.p.p50), us(l.p.p90), us(l.p.p99))
	}
	fmt.Printf("  plugin process per GetSecret: %s CPU, %.1f context switches\n", us(lat.pluginCPU), lat.pluginSwitches)
	if lat.hasOneP {
		fmt.Printf("  %-27s p50 %s  p90 %s  p99 %s\n", "GetSecret, GOMAXPROCS=1", us(lat.oneP.p50), us(lat.oneP.p90), us(lat.oneP.p99))
		fmt.Printf("  GOMAXPROCS=1 plugin process per GetSecret: %s CPU, %.1f context switches\n", us(lat.onePCPU), lat.onePSwitches)
	}
	return lat, nil
}

// perNodeResult is the per-node model's rounds: every driver ran the same
// load in each round, alternating; each figure is the driver's median round.
type perNodeResult struct {
	ours, naive, floor, prefetch, identity                     stormResult
	oursRuns, naiveRuns, floorRuns, prefetchRuns, identityRuns []stormResult
}

// limitMS is the per-node model's limit for a driver that fetches on every
// Get: each node's Gets one after another, one Conjur round trip each.
func (p perNodeResult) limitMS(o options) float64 {
	return float64(o.tasks*o.secrets) / float64(o.nodes) * ms(o.latency)
}

// perNodePhase runs the per-node model, ours, naive and the floor in
// o.rounds alternating rounds, against the server with o.latency.
func perNodePhase(ctx context.Context, o options, load *load, f *fleet) (perNodeResult, error) {
	var p perNodeResult
	if err := f.cj.setLatency(o.latency); err != nil {
		return p, err
	}
	fmt.Printf("per-node model: %d nodes, %d tasks x %d secrets over %d variables, server latency %s\n",
		o.nodes, o.tasks, o.secrets, o.variables, o.latency)
	for round := range o.rounds {
		fmt.Printf(" round %d of %d\n", round+1, o.rounds)
		for _, d := range []struct {
			name, sock string
			proc       *child
			runs       *[]stormResult
		}{
			{"ours", f.plugSock, f.plug, &p.oursRuns},
			{"prefetch", f.pre.sock, f.pre.proc, &p.prefetchRuns},
			{"per-identity", f.ident.sock, f.ident.proc, &p.identityRuns},
			{"naive", f.naiveSock, f.naive, &p.naiveRuns},
			{"floor", f.nullSock, f.null, &p.floorRuns},
		} {
			r, err := load.perNode(ctx, d.name, d.sock, o.nodes, f.cj, d.proc)
			if err != nil {
				return p, err
			}
			r.print()
			if r.failed > 0 {
				return p, fmt.Errorf("per-node storm %s: %d answers failed (first: %s); see the logs with -keep", d.name, r.failed, r.firstErr)
			}
			*d.runs = append(*d.runs, r)
		}
	}
	p.ours, p.naive, p.floor, p.prefetch = median(p.oursRuns), median(p.naiveRuns), median(p.floorRuns), median(p.prefetchRuns)
	p.identity = median(p.identityRuns)
	fmt.Printf("median rounds: ours %s, with prefetch %s, per-stack identity %s, naive %s, floor %s; limit %.0f ms\n", p.ours.wall.Round(time.Millisecond),
		p.prefetch.wall.Round(time.Millisecond), p.identity.wall.Round(time.Millisecond), p.naive.wall.Round(time.Millisecond), p.floor.wall.Round(time.Millisecond), p.limitMS(o))
	return p, nil
}

// boundedResult is the per-node model against a Conjur of bounded capacity.
type boundedResult struct {
	ours, naive stormResult
	tasks       int
}

// boundedPhase runs the per-node model with o.boundedTasks tasks against
// the server answering at most o.serverSlots requests at once, with
// o.authnCost added to each authentication; nil when o.serverSlots is 0.
func boundedPhase(ctx context.Context, o options, f *fleet) (*boundedResult, error) {
	if o.serverSlots == 0 {
		return nil, nil
	}
	bo := o
	bo.tasks = o.boundedTasks
	load := newLoad(bo)
	fmt.Printf("bounded Conjur: %d at a time, authentication %s, fetch %s; per-node model, %d nodes, %d tasks x %d secrets\n",
		o.serverSlots, o.latency+o.authnCost, o.latency, o.nodes, bo.tasks, o.secrets)
	if err := f.cj.setLatency(o.latency); err != nil {
		return nil, err
	}
	if err := f.cj.setSlots(o.serverSlots); err != nil {
		return nil, err
	}
	if err := f.cj.setAuthnCost(o.authnCost); err != nil {
		return nil, err
	}
	defer func() { _, _ = f.cj.setSlots(0), f.cj.setAuthnCost(0) }()
	b := &boundedResult{tasks: bo.tasks}
	var err error
	for _, d := range []struct {
		name, sock string
		proc       *child
		out        *stormResult
	}{
		{fmt.Sprintf("ours, Conjur %d at a time", o.serverSlots), f.plugSock, f.plug, &b.ours},
		{fmt.Sprintf("naive, Conjur %d at a time", o.serverSlots), f.naiveSock, f.naive, &b.naive},
	} {
		if *d.out, err = load.perNode(ctx, d.name, d.sock, o.nodes, f.cj, d.proc); err != nil {
			return nil, err
		}
		d.out.print()
		if d.out.failed > 0 {
			return nil, fmt.Errorf("bounded storm %s: %d answers failed (first: %s)", d.name, d.out.failed, d.out.firstErr)
		}
	}
	return b, nil
}

// stormPhase runs the default storm, ours then naive, same requests, same
// bound, same latency, in o.rounds alternating rounds so that a change in
// the machine's load touches both; each driver's figures are those of its
// median round.
func stormPhase(ctx context.Context, o options, load *load, f *fleet) (ours, naive stormResult, oursRuns, naiveRuns []stormResult, err error) {
	if err := f.cj.setLatency(o.latency); err != nil {
		return ours, naive, nil, nil, err
	}
	fmt.Printf("storm: %d tasks x %d secrets over %d variables, %d in flight at most, server latency %s\n",
		o.tasks, o.secrets, o.variables, o.concurrency, o.latency)
	for round := range o.rounds {
		fmt.Printf(" round %d of %d\n", round+1, o.rounds)
		r, err := load.storm(ctx, "ours", f.plugSock, o.concurrency, f.cj, f.plug)
		if err != nil {
			return ours, naive, nil, nil, err
		}
		r.print()
		oursRuns = append(oursRuns, r)
		if r, err = load.storm(ctx, "naive", f.naiveSock, o.concurrency, f.cj, f.naive); err != nil {
			return ours, naive, nil, nil, err
		}
		r.print()
		naiveRuns = append(naiveRuns, r)
	}
	ours, naive = median(oursRuns), median(naiveRuns)
	fmt.Printf("median rounds: ours %s, naive %s\n", ours.wall.Round(time.Millisecond), naive.wall.Round(time.Millisecond))
	for _, r := range append(oursRuns, naiveRuns...) {
		if r.failed > 0 {
			return ours, naive, nil, nil, fmt.Errorf("storm answers failed: %s %d (first: %s); see the logs with -keep", r.name, r.failed, r.firstErr)
		}
	}
	return ours, naive, oursRuns, naiveRuns, nil
}

// scaleResult is the scale row: the per-node model with many nodes and Gets.
type scaleResult struct {
	ours, naive, floor stormResult
	nodes              int
}

// scalePhase runs the per-node model with o.scaleNodes nodes and
// o.scaleTasks tasks, once per driver, against the server with o.latency:
// ours is a fresh plugin process with the default settings (prefetch on),
// so that its peak RSS is that of this load. nil when o.scaleTasks is 0.
func scalePhase(ctx context.Context, o options, f *fleet) (*scaleResult, error) {
	if o.scaleTasks == 0 {
		return nil, nil
	}
	so := o
	so.tasks = o.scaleTasks
	load := newLoad(so)
	fmt.Printf("scale: per-node model, %d nodes, %d tasks x %d secrets over %d variables, server latency %s\n",
		o.scaleNodes, so.tasks, o.secrets, o.variables, o.latency)
	if err := f.cj.setLatency(o.latency); err != nil {
		return nil, err
	}
	plug, sock, _, err := startPlugin(ctx, "scale", o.plugin, o.reuse, o.pluginEnv, f.cj, f.work)
	if err != nil {
		return nil, err
	}
	defer plug.stop()
	if err := warm(ctx, sock); err != nil {
		return nil, err
	}
	s := &scaleResult{nodes: o.scaleNodes}
	for _, d := range []struct {
		name, sock string
		proc       *child
		out        *stormResult
	}{
		{"ours (default settings), at scale", sock, plug, &s.ours},
		{"naive, at scale", f.naiveSock, f.naive, &s.naive},
		{"floor, at scale", f.nullSock, f.null, &s.floor},
	} {
		if *d.out, err = load.perNode(ctx, d.name, d.sock, o.scaleNodes, f.cj, d.proc); err != nil {
			return nil, err
		}
		d.out.print()
		if d.out.failed > 0 {
			return nil, fmt.Errorf("scale storm %s: %d answers failed (first: %s)", d.name, d.out.failed, d.out.firstErr)
		}
	}
	return s, nil
}
