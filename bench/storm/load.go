package main

import (
	"bytes"
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

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"

	"github.com/cyberark/conjur-swarm/internal/driver"
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
			req := driver.Request{
				SecretName:      fmt.Sprintf("storm_v%03d", v),
				SecretLabels:    map[string]string{"conjur.variable": variableID(v)},
				ServiceHostname: fmt.Sprintf("svc-%02d", t%40),
				ServiceID:       fmt.Sprintf("service%020d", t%40),
				ServiceName:     fmt.Sprintf("svc-%02d", t%40),
				ServiceLabels:   map[string]string{"com.docker.stack.namespace": "storm"},
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

func (c *socketClient) get(ctx context.Context, body []byte) (driver.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin"+driver.PathGetSecret, bytes.NewReader(body))
	if err != nil {
		return driver.Response{}, err
	}
	req.Header.Set("Accept", driver.AcceptHeader)
	resp, err := c.hc.Do(req)
	if err != nil {
		return driver.Response{}, err
	}
	defer resp.Body.Close()
	var res driver.Response
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
}

func (r stormResult) print() {
	fmt.Printf("  %-5s  %d Gets in %s (%.0f/s)  p50 %s  p99 %s  max %s  conjur requests %d (%s)  failed %d  DoNotReuse %d\n",
		r.name, r.gets, r.wall.Round(time.Millisecond), float64(r.gets)/r.wall.Seconds(),
		msf(r.lat.p50), msf(r.lat.p99), msf(r.lat.max), r.requests, r.byEndpoint, r.failed, r.doNotReuse)
	fmt.Printf("  process peak RSS %.1f MiB  CPU %s\n", float64(r.rssKiB)/1024, r.cpu.Round(time.Millisecond))
}

// storm sends every request to socket with o.concurrency workers, all
// released at once, and counts what reached the server meanwhile.
func (l *load) storm(ctx context.Context, name, socket string, cj *conjurCtl, proc *child) (stormResult, error) {
	c := newSocketClient(socket, l.o.concurrency)
	defer c.close()
	n := len(l.bodies)
	lat := make([]time.Duration, n)
	errs := make([]string, n)
	var dnr atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	if err := cj.resetCounts(); err != nil {
		return stormResult{}, err
	}
	cpu0, err := processCPU(proc.pid())
	if err != nil {
		return stormResult{}, err
	}
	for range l.o.concurrency {
		wg.Go(func() {
			<-start
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
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
	r := stormResult{name: name, gets: n, wall: time.Since(t0), doNotReuse: int(dnr.Load())}
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
	samples        int
	direct, plugin percentiles
	pluginCPU      time.Duration // plugin process CPU per GetSecret
	pluginSwitches float64       // plugin context switches per GetSecret
}

// measureLatency alternates blocks of direct conjur-api-go fetches and
// GetSecret calls through the plugin socket, so that a change in the
// machine's load during the run touches both alike.
func measureLatency(ctx context.Context, cj *conjurCtl, socket string, plug *child, samples int) (latencies, error) {
	if err := cj.setLatency(0); err != nil {
		return latencies{}, err
	}
	api, err := conjurapi.NewClientFromKey(conjurapi.Config{
		Account:           cj.account,
		ApplianceURL:      cj.url,
		CredentialStorage: conjurapi.CredentialStorageNone,
		Environment:       conjurapi.EnvironmentOSS,
	}, authn.LoginPair{Login: pluginLogin, APIKey: cj.key})
	if err != nil {
		return latencies{}, err
	}
	defer api.GetHttpClient().CloseIdleConnections()
	c := newSocketClient(socket, 1)
	defer c.close()
	const id = 0
	body, _ := json.Marshal(driver.Request{
		SecretName:   "storm_v000",
		SecretLabels: map[string]string{"conjur.variable": variableID(id)},
		ServiceName:  "svc-00", ServiceID: "service0", TaskID: "task0", NodeID: "node0",
		TaskImage: "registry.example.com/storm/app:1.0",
	})
	// Warm both: token, connections.
	for range 50 {
		if _, err := api.RetrieveSecret(variableID(id)); err != nil {
			return latencies{}, fmt.Errorf("direct fetch: %w", err)
		}
		res, err := c.get(ctx, body)
		if err != nil {
			return latencies{}, fmt.Errorf("plugin GetSecret: %w", err)
		}
		if res.Err != "" {
			return latencies{}, fmt.Errorf("plugin GetSecret: %s", res.Err)
		}
	}
	direct := make([]time.Duration, 0, samples)
	plugin := make([]time.Duration, 0, samples)
	var pluginCPU time.Duration
	var switches int64
	const block = 100
	for len(direct) < samples {
		if err := ctx.Err(); err != nil {
			return latencies{}, err
		}
		k := min(block, samples-len(direct))
		for range k {
			t0 := time.Now()
			v, err := api.RetrieveSecret(variableID(id))
			direct = append(direct, time.Since(t0))
			if err != nil || string(v) != variableValue(id) {
				return latencies{}, fmt.Errorf("direct fetch: wrong answer (err %v)", err)
			}
		}
		cpu0, err := processCPU(plug.pid())
		if err != nil {
			return latencies{}, err
		}
		sw0, err := contextSwitches(plug.pid())
		if err != nil {
			return latencies{}, err
		}
		for range k {
			t0 := time.Now()
			res, err := c.get(ctx, body)
			plugin = append(plugin, time.Since(t0))
			if err != nil || res.Err != "" || string(res.Value) != variableValue(id) {
				return latencies{}, fmt.Errorf("plugin GetSecret: wrong answer (err %v, %s)", err, res.Err)
			}
		}
		cpu1, err := processCPU(plug.pid())
		if err != nil {
			return latencies{}, err
		}
		sw1, err := contextSwitches(plug.pid())
		if err != nil {
			return latencies{}, err
		}
		pluginCPU += cpu1 - cpu0
		switches += sw1 - sw0
	}
	return latencies{
		samples: samples, direct: percentilesOf(direct), plugin: percentilesOf(plugin),
		pluginCPU:      pluginCPU / time.Duration(samples),
		pluginSwitches: float64(switches) / float64(samples),
	}, nil
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

func ms(d time.Duration) float64  { return float64(d) / float64(time.Millisecond) }
func usf(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func msf(d time.Duration) string  { return fmt.Sprintf("%.2fms", ms(d)) }
func us(d time.Duration) string   { return fmt.Sprintf("%.0fµs", usf(d)) }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
