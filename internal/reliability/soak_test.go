package reliability

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

var (
	soakDuration = flag.Duration("soak", 0, "run TestSoak for at most this long (0: skip it; make soak sets it)")
	soakGets     = flag.Int("soak-gets", 100_000, "TestSoak stops once it has sent this many GetSecret calls and gone through every fault phase")
	soakWorkers  = flag.Int("soak-workers", 64, "concurrent GetSecret callers in TestSoak")
	soakPhase    = flag.Duration("soak-phase", 2*time.Second, "how long each fault phase of TestSoak lasts")
)

// soakVariables is how many extra variables the soak spreads its Gets over
// (so that batches hold several ids).
const soakVariables = 40

// scanCore is the soak's log sink: every entry is encoded as the production
// JSON encoder does and searched for every seeded secret; audit lines are
// counted by code. It keeps nothing, so memory stays flat.
type scanCore struct {
	zapcore.LevelEnabler
	enc    zapcore.Encoder
	forms  *[]string
	shared *scanCounts
}

type scanCounts struct {
	lines, leaks atomic.Int64
	mu           sync.Mutex
	auditByCode  map[string]int64
}

func newScanCore() *scanCore {
	return &scanCore{
		LevelEnabler: zapcore.DebugLevel,
		enc:          zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		forms:        new([]string),
		shared:       &scanCounts{auditByCode: map[string]int64{}},
	}
}

func (c *scanCore) With(fields []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for _, f := range fields {
		f.AddTo(enc)
	}
	return &scanCore{LevelEnabler: c.LevelEnabler, enc: enc, forms: c.forms, shared: c.shared}
}

func (c *scanCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *scanCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	buf, err := c.enc.EncodeEntry(e, fields)
	if err != nil {
		return err
	}
	text := buf.String()
	buf.Free()
	c.shared.lines.Add(1)
	for _, f := range *c.forms {
		if strings.Contains(text, f) {
			c.shared.leaks.Add(1)
		}
	}
	if e.LoggerName == "driver.audit" {
		code := "allow"
		for _, f := range fields {
			if f.Key == "code" && f.String != "" {
				code = f.String
			}
		}
		c.shared.mu.Lock()
		c.shared.auditByCode[code]++
		c.shared.mu.Unlock()
	}
	return nil
}

func (c *scanCore) Sync() error { return nil }

// memSample is the process's memory after a GC.
type memSample struct {
	heapAlloc, heapSys uint64
	rssKiB             int64
	goroutines         int
}

func sampleMem() memSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heapAlloc: ms.HeapAlloc, heapSys: ms.HeapSys, rssKiB: rssKiB(), goroutines: runtime.NumGoroutine()}
}

func (m memSample) String() string {
	return fmt.Sprintf("heap %.1f MiB (of %.1f MiB from the OS), RSS %.1f MiB, %d goroutines",
		float64(m.heapAlloc)/(1<<20), float64(m.heapSys)/(1<<20), float64(m.rssKiB)/1024, m.goroutines)
}

// rssKiB reads VmRSS from /proc/self/status (Linux); -1 elsewhere.
func rssKiB() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// soakPhases are the fault phases, switched in turn; "clean" phases
// between faults show that the plugin recovers each time.
var soakPhases = []struct {
	name  string
	apply func(d *conjurdev.Server)
}{
	{"clean", func(d *conjurdev.Server) { d.Faults().Reset() }},
	{"latency 50ms", func(d *conjurdev.Server) { d.Faults().SetLatency(50 * time.Millisecond) }},
	{"clean", func(d *conjurdev.Server) { d.Faults().Reset() }},
	{"503 on 30%", func(d *conjurdev.Server) { d.Faults().SetStatus(503, 0.3) }},
	{"clean", func(d *conjurdev.Server) { d.Faults().Reset() }},
	{"drop 20%", func(d *conjurdev.Server) { d.Faults().SetDrop(0.2) }},
	{"clean", func(d *conjurdev.Server) { d.Faults().Reset() }},
	{"tokens expired", func(d *conjurdev.Server) { d.Faults().Reset(); d.ExpireTokens() }},
	{"latency 50ms + 503 on 10% + drop 5%", func(d *conjurdev.Server) {
		d.Faults().SetLatency(50 * time.Millisecond)
		d.Faults().SetStatus(503, 0.1)
		d.Faults().SetDrop(0.05)
	}},
	{"clean", func(d *conjurdev.Server) { d.Faults().Reset() }},
	{"latency beyond the fetch timeout", func(d *conjurdev.Server) { d.Faults().SetLatency(fetchTimeout + 500*time.Millisecond) }},
}

// soakOutcome counts the answers of one kind of request.
type soakOutcome struct {
	mu      sync.Mutex
	byCode  map[string]int64 // "value" for the exact value
	wrong   int64            // a value that is not the exact one, or an Err without a code
	samples []string         // a few wrong answers (never values)
}

func (o *soakOutcome) add(code string, wrong bool, sample string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.byCode[code]++
	if wrong {
		o.wrong++
		if len(o.samples) < 5 {
			o.samples = append(o.samples, sample)
		}
	}
}

// TestSoak sends GetSecret calls through the plugin socket from many callers
// while Conjur's faults switch on and off, and checks that every allowed
// request got its exact value or an Err with a known code, that denials stay
// denials, that no secret reaches the log, and reports memory at start and
// end. It runs until it has sent -soak-gets calls and gone through every
// fault phase, or for -soak=DURATION at most; it runs only when -soak is
// given (make soak).
func TestSoak(t *testing.T) {
	if *soakDuration <= 0 {
		t.Skip("the soak runs with -soak=DURATION (make soak)")
	}
	checkNoLeftovers(t)
	sink := newScanCore()
	s := newStack(t, func(c *stackConfig) { c.logSink = sink })

	// Spread the load over more variables.
	var pol strings.Builder
	for i := range soakVariables {
		fmt.Fprintf(&pol, "- !variable soak/v%02d\n- !permit\n  role: !group secret-readers\n  privileges: [ read, execute ]\n  resource: !variable soak/v%02d\n", i, i)
	}
	if _, err := s.dev.LoadConjurPolicy(conjurdev.ModePatch, "apps", []byte(pol.String())); err != nil {
		t.Fatal(err)
	}
	allowed := []string{dbPassword, apiToken, tlsKey}
	for i := range soakVariables {
		id := fmt.Sprintf("apps/soak/v%02d", i)
		s.set(t, id, randomValue(id), s.secrets)
		allowed = append(allowed, id)
	}
	*sink.forms = s.secrets.forms()

	known := map[string]bool{}
	for _, c := range []string{"UNAVAILABLE", "TIMEOUT", "AUTH_REFUSED", "NOT_FOUND", "FORBIDDEN", "TLS", "DENIED", "VALUE_UNUSABLE", "INTERNAL", "CANCELED", "NO_CREDENTIAL"} {
		known[c] = true
	}
	allowedOut := &soakOutcome{byCode: map[string]int64{}}
	deniedOut := &soakOutcome{byCode: map[string]int64{}}
	missingOut := &soakOutcome{byCode: map[string]int64{}}
	var transport atomic.Int64

	start := sampleMem()
	ctx, stop := context.WithTimeout(context.Background(), *soakDuration)
	defer stop()
	var sent atomic.Int64
	began := time.Now()

	// The fault switcher.
	var phaseLog []string
	var peakRSS atomic.Int64
	switched := make(chan struct{})
	go func() {
		defer close(switched)
		defer s.dev.Faults().Reset()
		tick := time.NewTicker(*soakPhase)
		defer tick.Stop()
		for i := 0; ; i++ {
			if i >= len(soakPhases) && sent.Load() >= int64(*soakGets) {
				stop() // enough calls, every phase seen
				return
			}
			p := soakPhases[i%len(soakPhases)]
			p.apply(s.dev)
			phaseLog = append(phaseLog, fmt.Sprintf("%s@%d", p.name, sent.Load()))
			if r := rssKiB(); r > peakRSS.Load() {
				peakRSS.Store(r)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range *soakWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(began.UnixNano())))
			for ctx.Err() == nil {
				sent.Add(1)
				var req pluginapi.Request
				var want []byte
				out := allowedOut
				switch r := rng.IntN(100); {
				case r < 5:
					req, out = s.byLabel("restricted/admin-password"), deniedOut
				case r < 10:
					req, out = s.byLabel(unset), missingOut
				default:
					id := allowed[rng.IntN(len(allowed))]
					req, want = s.byLabel(id), s.values[id]
				}
				res, err := s.plugin.GetSecret(context.Background(), req)
				if err != nil {
					transport.Add(1)
					continue
				}
				code := errCode(res.Err)
				switch {
				case res.Err == "" && out == allowedOut:
					ok := string(res.Value) == string(want)
					out.add("value", !ok, "a value that is not the variable's")
				case res.Err == "":
					out.add("value", true, "a value for a request that must fail")
				default:
					wrong := !known[code] || len(res.Value) != 0 ||
						out == deniedOut && code != "DENIED" || out == missingOut && code != "NOT_FOUND" && code != "UNAVAILABLE" && code != "TIMEOUT" && code != "AUTH_REFUSED"
					out.add(code, wrong, res.Err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	stop()
	<-switched
	total := sent.Load()
	if total < int64(*soakGets) {
		t.Errorf("only %d GetSecret calls within -soak=%s; want %d (a slow machine: raise SOAK_DURATION)", total, *soakDuration, *soakGets)
	}

	// After the faults: every variable is served again.
	for _, id := range allowed {
		s.expectValue(s.byLabel(id), s.values[id])
	}
	end := sampleMem()

	var b strings.Builder
	fmt.Fprintf(&b, "soak: %d GetSecret calls in %s (%.0f/s) from %d callers through the plugin socket; phases of %s: %s\n",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), *soakWorkers, *soakPhase, strings.Join(phaseLog, ", "))
	for _, o := range []struct {
		name string
		out  *soakOutcome
	}{{"allowed", allowedOut}, {"denied (outside within)", deniedOut}, {"allowed, no value in Conjur", missingOut}} {
		fmt.Fprintf(&b, "  %-28s %s; wrong answers: %d\n", o.name+":", codes(o.out.byCode), o.out.wrong)
	}
	sink.shared.mu.Lock()
	fmt.Fprintf(&b, "  audit lines by code:         %s\n", codes(sink.shared.auditByCode))
	sink.shared.mu.Unlock()
	fmt.Fprintf(&b, "  log lines scanned: %d, secrets found in them: %d; transport errors on the socket: %d\n",
		sink.shared.lines.Load(), sink.shared.leaks.Load(), transport.Load())
	fmt.Fprintf(&b, "  memory at start: %s\n  memory at end:   %s\n  peak RSS sampled: %.1f MiB\n", start, end, float64(peakRSS.Load())/1024)
	fmt.Fprintf(&b, "  conjurdev requests: %s", codes(s.dev.Counts()))
	t.Log(b.String())

	for _, o := range []*soakOutcome{allowedOut, deniedOut, missingOut} {
		if o.wrong > 0 {
			t.Errorf("%d wrong answers, e.g. %q", o.wrong, o.samples)
		}
	}
	if n := sink.shared.leaks.Load(); n > 0 {
		t.Errorf("%d log lines hold a seeded secret", n)
	}
	if n := transport.Load(); n > 0 {
		t.Errorf("%d GetSecret calls failed on the socket itself", n)
	}
	if allowedOut.byCode["value"] == 0 {
		t.Error("no value was served: the soak proves nothing")
	}
}

// codes renders a count map sorted by key.
func codes[V int64 | uint64](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
