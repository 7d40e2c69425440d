package main

import (
	"context"
	"os"
)

// fleet is the processes the harness measures: the Conjur stand-in, the
// plugin, the naive and null drivers and, with the extras, a second plugin
// with GOMAXPROCS=1.
type fleet struct {
	self, work string
	cj         *conjurCtl

	plug           *child
	plugSock       string
	pluginSettings []string // the plugin's environment, for the report
	naive, null    *child
	naiveSock      string
	nullSock       string
	oneP           *probeTarget // nil without the extras
	pre            *probeTarget // the plugin with prefetch on (its default): the per-node model's prefetch rounds
	ident          *probeTarget // the plugin in the per-stack identity mode, prefetch off: the per-node model's identity rounds

	stops []func()
}

// startFleet starts every process; on error it stops those it started.
func startFleet(ctx context.Context, o options, work string) (f *fleet, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f = &fleet{self: self, work: work}
	defer func() {
		if err != nil {
			f.stop()
		}
	}()
	if err := writeManagerJWKS(work); err != nil {
		return nil, err
	}
	if f.cj, err = startConjur(ctx, self, work, o.variables); err != nil {
		return nil, err
	}
	f.stops = append(f.stops, f.cj.close)
	// The measured plugin runs without prefetch (its default is on), so its
	// figures are those of fetching on every Get; a second process with the
	// default settings runs the per-node model's prefetch rounds.
	plugEnv := append([]string{"CONJUR_SWARM_PREFETCH=false"}, o.pluginEnv...)
	if f.plug, f.plugSock, f.pluginSettings, err = startPlugin(ctx, "plugin", o.plugin, o.reuse, plugEnv, f.cj, work); err != nil {
		return nil, err
	}
	f.stops = append(f.stops, f.plug.stop)
	if f.naive, f.naiveSock, err = startDriver(ctx, "naive", self, work, f.cj); err != nil {
		return nil, err
	}
	f.stops = append(f.stops, f.naive.stop)
	if f.null, f.nullSock, err = startDriver(ctx, "null", self, work, f.cj); err != nil {
		return nil, err
	}
	f.stops = append(f.stops, f.null.stop)
	pre, preSock, _, err := startPlugin(ctx, "prefetch", o.plugin, o.reuse, o.pluginEnv, f.cj, work)
	if err != nil {
		return nil, err
	}
	f.stops = append(f.stops, pre.stop)
	if err := warm(ctx, preSock); err != nil {
		return nil, err
	}
	f.pre = &probeTarget{sock: preSock, proc: pre}
	ident, identSock, err := startIdentityPlugin(ctx, o.plugin, o.reuse, o.pluginEnv, f.cj, work)
	if err != nil {
		return nil, err
	}
	f.stops = append(f.stops, ident.stop)
	f.ident = &probeTarget{sock: identSock, proc: ident}

	// With the extras, a second plugin process with GOMAXPROCS=1 (otherwise
	// the same settings): how much of a Get is the Go scheduler handing work
	// between two threads.
	if o.extras {
		p, sock, _, err := startPlugin(ctx, "oneproc", o.plugin, o.reuse, append([]string{"GOMAXPROCS=1"}, o.pluginEnv...), f.cj, work)
		if err != nil {
			return nil, err
		}
		f.stops = append(f.stops, p.stop)
		f.oneP = &probeTarget{sock: sock, proc: p}
	}
	return f, nil
}

// stop stops the processes in the reverse order of their start.
func (f *fleet) stop() {
	for i := len(f.stops) - 1; i >= 0; i-- {
		f.stops[i]()
	}
	f.stops = nil
}
