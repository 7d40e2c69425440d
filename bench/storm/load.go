package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// load is the storm's requests, encoded once: task t's secret s stands for
// variable (t*M+s) mod D, so each task asks for M distinct variables and
// each variable is asked for about N*M/D times, by tasks spread over the
// whole storm.
type load struct {
	o      options
	bodies [][]byte
	want   []string // expected value per request
}

func newLoad(o options) *load {
	l := &load{o: o}
	for t := range o.tasks {
		for s := range o.secrets {
			v := (t*o.secrets + s) % o.variables
			req := pluginapi.Request{
				SecretName:      fmt.Sprintf("storm_v%03d", v),
				SecretLabels:    map[string]string{"conjur.variable": variableID(v)},
				ServiceHostname: fmt.Sprintf("svc-%02d", t%40),
				ServiceID:       fmt.Sprintf("service%020d", t%40),
				ServiceName:     fmt.Sprintf("svc-%02d", t%40),
				ServiceLabels:   map[string]string{"com.docker.stack.namespace": stackName(t % 40 % identityStacks)},
				TaskID:          fmt.Sprintf("task%021d", t),
				TaskName:        fmt.Sprintf("svc-%02d.%d.task%021d", t%40, t/40+1, t),
				TaskImage:       "registry.example.com/storm/app:1.0",
				NodeID:          fmt.Sprintf("node%021d", t%20),
			}
			body, _ := json.Marshal(req) // plain strings and maps: cannot fail
			l.bodies = append(l.bodies, body)
			l.want = append(l.want, variableValue(v))
		}
	}
	return l
}

// socketClient talks to a plugin socket as Docker's plugin client does
// (POST, JSON body, the plugins Accept header), over kept-alive
// connections, at most maxConns at a time.
type socketClient struct {
	hc *http.Client
	tr *http.Transport
}

func newSocketClient(socket string, maxConns int) *socketClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxConnsPerHost:     maxConns,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		DisableCompression:  true,
	}
	return &socketClient{hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}, tr: tr}
}

func (c *socketClient) close() { c.tr.CloseIdleConnections() }

func (c *socketClient) get(ctx context.Context, body []byte) (pluginapi.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin"+pluginapi.PathGetSecret, bytes.NewReader(body))
	if err != nil {
		return pluginapi.Response{}, err
	}
	req.Header.Set("Accept", pluginapi.AcceptHeader)
	resp, err := c.hc.Do(req)
	if err != nil {
		return pluginapi.Response{}, err
	}
	defer resp.Body.Close()
	var res pluginapi.Response
	err = json.NewDecoder(resp.Body).Decode(&res)
	_, _ = io.Copy(io.Discard, resp.Body)
	return res, err
}

// stormResult is what one storm measured.
type stormResult struct {
	name       string
	gets       int
	wall       time.Duration
	lat        percentiles
	requests   int64  // Conjur requests, every endpoint
	byEndpoint string // non-zero counts by endpoint
	failed     int
	firstErr   string
	doNotReuse int           // answers with DoNotReuse set
	rssKiB     int64         // the driver process's peak RSS (VmHWM), over its life
	cpu        time.Duration // the driver process's CPU time during the storm
	clientCPU  time.Duration // the harness's (the load generator's) CPU time during the storm
	conjurCPU  time.Duration // the Conjur server process's CPU time during the storm
	inFlight   int           // the concurrency bound
}

func (r stormResult) print() {
	fmt.Printf("  %-5s  %d Gets in %s (%.0f/s)  p50 %s  p99 %s  max %s  conjur requests %d (%s)  failed %d  DoNotReuse %d\n",
		r.name, r.gets, r.wall.Round(time.Millisecond), float64(r.gets)/r.wall.Seconds(),
		msf(r.lat.p50), msf(r.lat.p99), msf(r.lat.max), r.requests, r.byEndpoint, r.failed, r.doNotReuse)
	fmt.Printf("         driver process peak RSS %.1f MiB; CPU during the storm: driver %s, load generator %s, Conjur server %s\n",
		float64(r.rssKiB)/1024, r.cpu.Round(time.Millisecond), r.clientCPU.Round(time.Millisecond), r.conjurCPU.Round(time.Millisecond))
}

// median returns the run with the median wall time (the upper one of an
// even count), with rssKiB the largest of all runs (the process's peak).
func median(runs []stormResult) stormResult {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b stormResult) int { return cmp.Compare(a.wall, b.wall) })
	m := sorted[len(sorted)/2]
	for _, r := range runs {
		m.rssKiB = max(m.rssKiB, r.rssKiB)
	}
	return m
}

// storm sends every request to socket with inFlight workers, all released
// at once, pulling the next request from one shared list (the burst model),
// and counts what reached the server meanwhile.
func (l *load) storm(ctx context.Context, name, socket string, inFlight int, cj *conjurCtl, proc *child) (stormResult, error) {
	var next atomic.Int64
	n := len(l.bodies)
	shared := func(int) int {
		if i := int(next.Add(1) - 1); i < n {
			return i
		}
		return -1
	}
	return l.run(ctx, name, socket, inFlight, shared, cj, proc)
}

// perNode sends every request to socket as swarmkit's dispatcher does after
// a leader change: one worker per node, all released at once, each sending
// the secrets of its node's tasks one after another (task t runs on node
// t mod nodes; its M secrets in order), and counts what reached the server.
func (l *load) perNode(ctx context.Context, name, socket string, nodes int, cj *conjurCtl, proc *child) (stormResult, error) {
	pos := make([]int, nodes) // per node: how many of its requests were sent
	m := l.o.secrets
	order := func(w int) int {
		k := pos[w]
		pos[w]++
		t := w + (k/m)*nodes
		if t >= l.o.tasks {
			return -1
		}
		return t*m + k%m
	}
	return l.run(ctx, name, socket, nodes, order, cj, proc)
}

// run sends requests to socket with workers goroutines, all released at
// once; worker w sends next(w) until it is negative (next(w) is called from
// worker w only).
func (l *load) run(ctx context.Context, name, socket string, workers int, next func(w int) int, cj *conjurCtl, proc *child) (stormResult, error) {
	inFlight := workers
	c := newSocketClient(socket, inFlight)
	defer c.close()
	n := len(l.bodies)
	lat := make([]time.Duration, n)
	errs := make([]string, n)
	var dnr atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	if err := cj.resetCounts(); err != nil {
		return stormResult{}, err
	}
	cpu0, err := processCPU(proc.pid())
	if err != nil {
		return stormResult{}, err
	}
	conjurCPU0, err := processCPU(cj.proc.pid())
	if err != nil {
		return stormResult{}, err
	}
	self0 := selfCPU()
	for w := range inFlight {
		wg.Go(func() {
			<-start
			for {
				i := next(w)
				if i < 0 || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				res, err := c.get(ctx, l.bodies[i])
				lat[i] = time.Since(t0)
				switch {
				case err != nil:
					errs[i] = err.Error()
				case res.Err != "":
					errs[i] = res.Err
				case string(res.Value) != l.want[i]:
					errs[i] = fmt.Sprintf("request %d: wrong value (%d bytes)", i, len(res.Value))
				case res.DoNotReuse:
					dnr.Add(1)
				}
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	r := stormResult{name: name, gets: n, wall: time.Since(t0), doNotReuse: int(dnr.Load()), inFlight: inFlight}
	r.clientCPU = selfCPU() - self0
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.requests, r.byEndpoint, err = cj.requests(); err != nil {
		return r, err
	}
	if r.rssKiB, err = peakRSSKiB(proc.pid()); err != nil {
		return r, err
	}
	cpu1, err := processCPU(proc.pid())
	if err != nil {
		return r, err
	}
	r.cpu = cpu1 - cpu0
	conjurCPU1, err := processCPU(cj.proc.pid())
	if err != nil {
		return r, err
	}
	r.conjurCPU = conjurCPU1 - conjurCPU0
	r.lat = percentilesOf(lat)
	for _, e := range errs {
		if e != "" {
			if r.failed == 0 {
				r.firstErr = e
			}
			r.failed++
		}
	}
	return r, nil
}

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

const (
	pluginProbe = 3 // GetSecret through the plugin
	onePProbe   = 4 // the same with GOMAXPROCS=1, when given
)

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

func ms(d time.Duration) float64  { return float64(d) / float64(time.Millisecond) }
func usf(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func msf(d time.Duration) string  { return fmt.Sprintf("%.2fms", ms(d)) }
func us(d time.Duration) string   { return fmt.Sprintf("%.0fµs", usf(d)) }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
