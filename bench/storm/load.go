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
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
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

// cpuPerGetUS is the driver process's CPU time per Get, in µs.
func (r stormResult) cpuPerGetUS() float64 { return usf(r.cpu) / float64(max(1, r.gets)) }

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
	endProfile, err := proc.profileWindow(name)
	if err != nil {
		return stormResult{}, err
	}
	defer endProfile()
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
	r.countFailures(errs)
	return r, nil
}

// countFailures sets failed and firstErr from the Gets' errors ("": none).
func (r *stormResult) countFailures(errs []string) {
	for _, e := range errs {
		if e != "" {
			if r.failed == 0 {
				r.firstErr = e
			}
			r.failed++
		}
	}
}

const (
	pluginProbe = 3 // GetSecret through the plugin
	onePProbe   = 4 // the same with GOMAXPROCS=1, when given
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func usf(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func msf(d time.Duration) string { return fmt.Sprintf("%.2fms", ms(d)) }

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", usf(d)) }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
