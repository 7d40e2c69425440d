package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"syscall"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// latencies compares one call at a time, warm token, server latency 0.
type latencies struct {
	samples int
	direct  percentiles // conjur-api-go RetrieveSecret from the harness
	client  percentiles // the plugin's Conjur client (conjur.Client.Get) alone, in the harness
	socket  percentiles // GetSecret to the null driver: the socket and protocol alone
	plugin  percentiles // GetSecret through the plugin: socket, driver, policy, conjur.Client, Conjur

	pluginCPU      time.Duration // plugin process CPU per GetSecret
	pluginSwitches float64       // plugin context switches per GetSecret

	// The same plugin run with GOMAXPROCS=1 (an experiment for the
	// document; hasOneP is false when it was not measured).
	hasOneP      bool
	oneP         percentiles
	onePCPU      time.Duration
	onePSwitches float64
}

// probeTarget is a plugin process to time alongside the others.
type probeTarget struct {
	sock string
	proc *child
}

// measureLatency times one call at a time of each kind, alternating blocks
// of 100 of each so that a change in the machine's load during the run
// touches all alike. Phases: build the probes, warm every path, time them,
// summarize.
func measureLatency(ctx context.Context, f *fleet, samples int) (latencies, error) {
	if err := f.cj.setLatency(0); err != nil {
		return latencies{}, err
	}
	ps, err := newProbeSet(ctx, f)
	if err != nil {
		return latencies{}, err
	}
	defer ps.close()
	// Warm every path: tokens, connections.
	for range 50 {
		for _, p := range ps.probes {
			if err := p.call(); err != nil {
				return latencies{}, err
			}
		}
	}
	if err := ps.time(ctx, samples); err != nil {
		return latencies{}, err
	}
	return ps.latencies(samples), nil
}

// probe is one kind of call to time, and the process whose CPU and context
// switches it is charged with (nil: none watched).
type probe struct {
	call     func() error
	watched  *child
	times    []time.Duration
	cpu      time.Duration
	switches int64
}

// probeSet is the calls measureLatency compares, in the order of the
// latencies fields: direct, client, socket, plugin, then oneP if any.
type probeSet struct {
	probes  []*probe
	closers []func()
}

func newProbeSet(ctx context.Context, f *fleet) (*probeSet, error) {
	cj := f.cj
	ps := &probeSet{}
	api, err := conjurapi.NewClientFromKey(conjurapi.Config{
		Account:           cj.account,
		ApplianceURL:      cj.url,
		CredentialStorage: conjurapi.CredentialStorageNone,
		Environment:       conjurapi.EnvironmentOSS,
	}, authn.LoginPair{Login: pluginLogin, APIKey: cj.key})
	if err != nil {
		return nil, err
	}
	ps.closers = append(ps.closers, api.GetHttpClient().CloseIdleConnections)
	cc, err := conjur.New(conjur.Config{
		ApplianceURLs: []string{cj.url},
		Account:       cj.account,
		Login:         pluginLogin,
		AllowHTTP:     true,
		APIKey:        redact.String(cj.key),
	}, zap.NewNop())
	if err != nil {
		ps.close()
		return nil, err
	}
	ps.closers = append(ps.closers, func() { _ = cc.Close() })

	const id = 0
	want := variableValue(id)
	body, _ := json.Marshal(pluginapi.Request{
		SecretName:   "storm_v000",
		SecretLabels: map[string]string{"conjur.variable": variableID(id)},
		ServiceName:  "svc-00", ServiceID: "service0", TaskID: "task0", NodeID: "node0",
		TaskImage: "registry.example.com/storm/app:1.0",
	})
	viaSocket := func(sock, what string) func() error {
		c := newSocketClient(sock, 1)
		ps.closers = append(ps.closers, c.close)
		return func() error {
			res, err := c.get(ctx, body)
			if err != nil || res.Err != "" || string(res.Value) != want {
				return fmt.Errorf("%s: wrong answer (err %v, %s)", what, err, res.Err)
			}
			return nil
		}
	}
	ps.probes = []*probe{
		{call: func() error {
			v, err := api.RetrieveSecret(variableID(id))
			if err != nil || string(v) != want {
				return fmt.Errorf("direct fetch: wrong answer (err %v)", err)
			}
			return nil
		}},
		{call: func() error {
			v, err := cc.Get(ctx, conjur.Ref{ID: variableID(id)})
			if err != nil || string(v.Data) != want {
				return fmt.Errorf("conjur.Client Get: wrong answer (err %v)", err)
			}
			return nil
		}},
		{call: viaSocket(f.nullSock, "null driver GetSecret")},
		{call: viaSocket(f.plugSock, "plugin GetSecret"), watched: f.plug},
	}
	if f.oneP != nil {
		ps.probes = append(ps.probes, &probe{call: viaSocket(f.oneP.sock, "plugin (GOMAXPROCS=1) GetSecret"), watched: f.oneP.proc})
	}
	return ps, nil
}

func (ps *probeSet) close() {
	for i := len(ps.closers) - 1; i >= 0; i-- {
		ps.closers[i]()
	}
}

// time runs samples calls of each probe in blocks of 100, charging each
// block's CPU and context switches to the watched process.
func (ps *probeSet) time(ctx context.Context, samples int) error {
	const block = 100
	for done := 0; done < samples; done += block {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(block, samples-done)
		for _, p := range ps.probes {
			if err := p.timeBlock(k); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *probe) timeBlock(k int) error {
	var cpu0 time.Duration
	var sw0 int64
	if p.watched != nil {
		cpu0, _ = processCPU(p.watched.pid())
		sw0, _ = contextSwitches(p.watched.pid())
	}
	for range k {
		t0 := time.Now()
		err := p.call()
		p.times = append(p.times, time.Since(t0))
		if err != nil {
			return err
		}
	}
	if p.watched != nil {
		cpu1, _ := processCPU(p.watched.pid())
		sw1, _ := contextSwitches(p.watched.pid())
		p.cpu += cpu1 - cpu0
		p.switches += sw1 - sw0
	}
	return nil
}

// latencies summarizes the timed probes.
func (ps *probeSet) latencies(samples int) latencies {
	plugin := ps.probes[pluginProbe]
	l := latencies{
		samples: samples,
		direct:  percentilesOf(ps.probes[0].times),
		client:  percentilesOf(ps.probes[1].times),
		socket:  percentilesOf(ps.probes[2].times),
		plugin:  percentilesOf(plugin.times),

		pluginCPU:      plugin.cpu / time.Duration(samples),
		pluginSwitches: float64(plugin.switches) / float64(samples),
	}
	if len(ps.probes) > onePProbe {
		oneP := ps.probes[onePProbe]
		l.hasOneP = true
		l.oneP = percentilesOf(oneP.times)
		l.onePCPU = oneP.cpu / time.Duration(samples)
		l.onePSwitches = float64(oneP.switches) / float64(samples)
	}
	return l
}

type percentiles struct {
	p50, p90, p99, max time.Duration
}

// percentilesOf returns nearest-rank percentiles of ds (which it sorts).
func percentilesOf(ds []time.Duration) percentiles {
	if len(ds) == 0 {
		return percentiles{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	return percentiles{p50: at(0.50), p90: at(0.90), p99: at(0.99), max: ds[len(ds)-1]}
}

// selfCPU is the harness process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
