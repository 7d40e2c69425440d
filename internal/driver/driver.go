package driver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// Options configure a Driver. Resolver and Logger are required.
type Options struct {
	Resolver Resolver
	// Conjur is the Conjur client. Nil means the plugin's Conjur settings
	// are missing or invalid: New puts a NotConfigured with ConfigProblem
	// (which settings to fix) in its place, and the status says so.
	Conjur        Conjur
	ConfigProblem string
	// Account is the plugin's CONJUR_ACCOUNT: a mapping file that names
	// another account cannot be served by this plugin's identity, and a
	// handoff for another account is refused.
	Account string
	// ApplianceURLs is the plugin's CONJUR_APPLIANCE_URL list: a handoff
	// must name at least one of them.
	ApplianceURLs []string

	PolicyStatus PolicyReporter // nil: status shows no mapping section

	Logger   *zap.Logger
	Observer Observer // nil: no metrics
	// AuditSink receives every decision record as well as the audit log
	// line (CONJUR_SWARM_AUDIT_SYSLOG); nil: the log line only. It must not
	// block: it is called on the GetSecret path.
	AuditSink AuditSink

	// RecentDecisions is how many decisions the status endpoint keeps
	// (default 100).
	RecentDecisions int
	// RequestTimeout bounds one GetSecret end to end (default 25s, under
	// Swarm's 30 s plugin timeout). The Conjur client has its own, shorter,
	// fetch deadline.
	RequestTimeout time.Duration
	// Version is reported by the status endpoint.
	Version string
	// Now is the clock (default time.Now).
	Now func() time.Time

	// Prefetch turns on per-task prefetch (prefetch.go): at a task's first
	// Get, the variables its service was allowed before are fetched in the
	// same batch and kept for that task's later Gets, at most PrefetchTTL
	// (default 5s).
	Prefetch    bool
	PrefetchTTL time.Duration

	// ReadyInterval is how recent Conjur's last answer must be for /readyz
	// (default DefaultReadyInterval); when none is, /readyz asks Conjur.
	ReadyInterval time.Duration
}

// Driver answers GetSecret requests: policy, then Conjur, then the value
// checks, with one audit record per decision. It is safe for concurrent use.
type Driver struct {
	opts    Options
	log     *zap.Logger
	audit   *zap.Logger
	journal *journal
	started time.Time
	handoff handoffLog
	pf      *prefetcher // nil: prefetch off
	stale   *staleBook  // what the stale_if_error rules asked for, for the status
	probe   prober      // /readyz's Ping, one at a time

	// notConfigured: Options.Conjur was nil, and the Conjur side is a
	// NotConfigured whose reason is configProblem (the status says so; a
	// handoff is refused before the Conjur checks).
	notConfigured bool
	configProblem string
}

// New checks the options and returns a Driver.
func New(opts Options) (*Driver, error) {
	var errs []error
	if opts.Resolver == nil {
		errs = append(errs, errors.New("driver: Options.Resolver is nil"))
	}
	if opts.Logger == nil {
		errs = append(errs, errors.New("driver: Options.Logger is nil"))
	}
	if opts.RequestTimeout < 0 {
		errs = append(errs, errors.New("driver: Options.RequestTimeout is negative"))
	}
	if opts.PrefetchTTL < 0 {
		errs = append(errs, errors.New("driver: Options.PrefetchTTL is negative"))
	}
	if opts.Conjur != nil && opts.ConfigProblem != "" {
		errs = append(errs, errors.New("driver: Options gives both a Conjur client and a ConfigProblem; give one"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 25 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadyInterval <= 0 {
		opts.ReadyInterval = DefaultReadyInterval
	}
	notConfigured := opts.Conjur == nil
	if notConfigured {
		opts.ConfigProblem = cmp.Or(opts.ConfigProblem, defaultNotConfigured)
		opts.Conjur = NotConfigured{Reason: opts.ConfigProblem}
	}
	d := &Driver{
		opts:          opts,
		notConfigured: notConfigured,
		configProblem: opts.ConfigProblem,
		log:           opts.Logger,
		audit:         opts.Logger.Named("audit"),
		journal:       newJournal(opts.RecentDecisions),
		stale:         newStaleBook(),
		started:       opts.Now(),
	}
	if opts.Prefetch && !notConfigured {
		d.pf = newPrefetcher(opts.PrefetchTTL, opts.Now)
	}
	return d, nil
}

// Close wipes the values prefetched for tasks; the Driver still answers
// (without them) after it.
func (d *Driver) Close() {
	if d.pf != nil {
		d.pf.wipe()
	}
}

// HandleGetSecret decodes a GetSecret body and answers it. A body that cannot
// be decoded is answered BAD_REQUEST and audited like any other decision.
//
// HandleGetSecret, getSecret and the functions they call are split so that
// no frame on the GetSecret path holds what only a rare branch needs: a
// handler goroutine's stack must stay under 8 KiB (docs/architecture.md,
// "Code shaped by a measurement").
func (d *Driver) HandleGetSecret(ctx context.Context, body io.Reader) pluginapi.Response {
	start := d.opts.Now()
	req, err := pluginapi.ReadRequest(body)
	if err != nil {
		return d.unreadable(start, err)
	}
	return d.getSecret(ctx, &req, start)
}

// GetSecret answers one request.
func (d *Driver) GetSecret(ctx context.Context, req pluginapi.Request) pluginapi.Response {
	return d.getSecret(ctx, &req, d.opts.Now())
}

func (d *Driver) getSecret(ctx context.Context, req *pluginapi.Request, start time.Time) pluginapi.Response {
	var rec audit.Record
	noteRequest(&rec, req)
	if err := req.Validate(); err != nil {
		return d.invalid(start, &rec, err)
	}
	var dec policy.Decision
	d.resolve(req, &dec)
	if !d.noteDecision(req, &rec, &dec) {
		return d.refuse(start, &rec, &dec)
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.RequestTimeout)
	defer cancel()
	if dec.Bundle != nil {
		return d.serveBundle(ctx, start, &rec, &dec, workload(req, dec.Identity))
	}
	return d.serveVariable(ctx, start, req, &rec, &dec)
}

// noteRequest records req's facts in rec.
func noteRequest(rec *audit.Record, req *pluginapi.Request) {
	rec.Secret = pluginapi.Clip(req.SecretName)
	rec.Service = pluginapi.Clip(req.ServiceName)
	rec.ServiceID = pluginapi.Clip(req.ServiceID)
	rec.Task = pluginapi.Clip(req.TaskID)
	rec.Node = pluginapi.Clip(req.NodeID)
	rec.Image = pluginapi.Clip(req.TaskImage)
}

// resolve sets *dec to the policy's decision for req.
func (d *Driver) resolve(req *pluginapi.Request, dec *policy.Decision) {
	*dec = d.opts.Resolver.Resolve(policyRequest(req))
}

// noteDecision records dec, the decision for req, in rec and reports
// whether it allows the Get: the policy allows it, for this plugin's
// Conjur account.
func (d *Driver) noteDecision(req *pluginapi.Request, rec *audit.Record, dec *policy.Decision) bool {
	rec.Rule, rec.Variable, rec.Identity, rec.DoNotReuse = dec.Rule, dec.Variable, dec.Identity, dec.DoNotReuse
	rec.StackLabelMismatch = pluginapi.Clip(policy.StackLabelMismatch(req.SecretName, req.SecretLabels))
	if dec.Bundle != nil {
		rec.Members = dec.Variables() // also for a deny by an allow condition
	}
	return dec.Allow && (dec.Account == "" || d.opts.Account == "" || dec.Account == d.opts.Account)
}

// serveVariable fetches dec's variable (or its last good value when the
// fetch fails and the rule allows it) and answers with it.
func (d *Driver) serveVariable(ctx context.Context, start time.Time, req *pluginapi.Request, rec *audit.Record, dec *policy.Decision) pluginapi.Response {
	ref := fetchRef(dec, dec.Variable, dec.Version, workload(req, dec.Identity))
	if dec.StaleIfError > 0 {
		d.stale.note(dec.Rule, ref)
	}
	val, prefetched, err := d.fetchVariable(ctx, req, dec, ref)
	rec.Coalesced, rec.Cached, rec.Prefetched = val.Coalesced, val.Cached, prefetched
	if err != nil {
		return d.fetchFailed(start, rec, dec, ref, err)
	}
	if dec.Field != "" || dec.Decode != "" {
		return d.serveRendered(start, rec, dec, [][]byte{val.Data})
	}
	return d.serve(start, rec, dec, val.Data)
}

// fetchRef is the ref every path fetches variable id at version with for
// dec (its own Get, a bundle member, a task's prefetch): the value cache
// only where the rule allows reuse, and a last good value kept for
// stale_if_error, as who (the per-request identity mode; nil otherwise).
func fetchRef(dec *policy.Decision, id string, version int, who *conjur.Workload) conjur.Ref {
	return conjur.Ref{ID: id, Version: version, NoCache: dec.DoNotReuse, KeepLastGood: dec.StaleIfError > 0, Workload: who}
}

// fetchVariable fetches ref, dec's variable, for req: from the values
// prefetched for req's task when one matches (prefetched), else from the
// Conjur client. At a task's first Get, with prefetch on, the variables its
// service was allowed before go out in the same batch, each with the ref
// its own Get used (as this task's workload), and are kept for the task's
// later Gets.
func (d *Driver) fetchVariable(ctx context.Context, req *pluginapi.Request, dec *policy.Decision, ref conjur.Ref) (val conjur.Value, prefetched bool, err error) {
	if d.pf == nil || req.TaskID == "" || req.ServiceID == "" {
		val, err = d.fetchOne(ctx, ref)
		return val, false, err
	}
	return d.fetchForTask(ctx, req, dec, ref)
}

// fetchForTask is fetchVariable with prefetch on, for a request that names
// its task and service.
func (d *Driver) fetchForTask(ctx context.Context, req *pluginapi.Request, dec *policy.Decision, ref conjur.Ref) (val conjur.Value, prefetched bool, err error) {
	t := taskKey{task: req.TaskID, service: req.ServiceID}
	k := prefetchKey{mapping: dec.Mapping, rule: dec.Rule, variable: dec.Variable, version: dec.Version, identity: dec.Identity}
	if data, ok := d.pf.take(t, k); ok {
		return conjur.Value{Data: data}, true, nil
	}
	plan := d.pf.plan(t, k)
	if len(plan) == 0 {
		val, err = d.fetchOne(ctx, ref)
	} else {
		refs := make([]conjur.Ref, 0, 1+len(plan))
		refs = append(refs, ref)
		for _, a := range plan {
			r := a.ref
			r.Workload = workload(req, a.key.identity)
			refs = append(refs, r)
		}
		vals, errs := d.fetchMany(ctx, refs)
		val, err = vals[0], errs[0]
		for i, a := range plan {
			if v := vals[i+1]; errs[i+1] == nil && len(v.Data) > 0 && len(v.Data) < MaxValueBytes {
				d.pf.keep(t, a.key, v.Data, !v.Cached)
			}
		}
	}
	if err == nil {
		d.pf.learn(req.ServiceID, k, ref)
	}
	return val, false, err
}

// fetchOne fetches one ref and tells the prefetch store the answer.
func (d *Driver) fetchOne(ctx context.Context, ref conjur.Ref) (conjur.Value, error) {
	v, err := d.opts.Conjur.Get(ctx, ref)
	if d.pf != nil {
		d.pf.answered(ref, v, err)
	}
	return v, err
}

// serve checks the size Swarm accepts and hands out data.
func (d *Driver) serve(start time.Time, rec *audit.Record, dec *policy.Decision, data []byte) pluginapi.Response {
	switch n := len(data); {
	case n == 0:
		return d.finish(start, rec, errcode.ValueUnusable,
			"Conjur returned an empty value and Swarm needs 1 byte to 500 KiB; set a value for the variable", nil, nil)
	case n >= MaxValueBytes:
		return d.finish(start, rec, errcode.ValueUnusable,
			fmt.Sprintf("the value is %d bytes and Swarm accepts less than %d (500 KiB); store a smaller value", n, MaxValueBytes), nil, nil)
	}
	rec.Decision = audit.DecisionAllow
	rec.Time = start
	rec.Duration = d.opts.Now().Sub(start)
	d.record(rec, nil)
	return pluginapi.Response{Value: data, DoNotReuse: dec.DoNotReuse}
}

// record writes the single audit line of a decision, keeps it for status and
// tells the observer.
func (d *Driver) record(rec *audit.Record, extra []zap.Field) {
	d.auditLine(rec, extra)
	d.keep(rec)
}

// auditLine writes a decision's audit line. It is apart from keep so that
// the copies of the record keep passes on are not in the frame under zap's
// encoder: a GetSecret goroutine's deepest point is this line, and past
// 8 KiB every one of the (512 in flight) goroutines' stacks doubles
// (docs/architecture.md, "Code shaped by a measurement").
func (d *Driver) auditLine(rec *audit.Record, extra []zap.Field) {
	pooled := lineFields.Get().(*[]zap.Field)
	fields := auditFields((*pooled)[:0], rec)
	if rec.Decision != audit.DecisionAllow {
		fields = append(fields, zap.String("err", rec.Reason))
	}
	fields = append(fields, extra...)
	defer func() {
		clear(fields) // no reference to the record's strings stays in the pool
		*pooled = fields[:0]
		lineFields.Put(pooled)
	}()
	switch rec.Decision {
	case audit.DecisionAllow:
		d.audit.Info("secret served", fields...)
	case audit.DecisionDeny:
		d.audit.Warn("secret denied", fields...)
	default:
		d.audit.Error("secret not served", fields...)
	}
}

// keep keeps a decision for status and hands it to the audit sink and the
// observer.
func (d *Driver) keep(rec *audit.Record) {
	d.journal.add(*rec)
	if d.opts.AuditSink != nil {
		d.opts.AuditSink.Audit(*rec)
	}
	if d.opts.Observer != nil {
		d.opts.Observer.ObserveDecision(rec.Decision, rec.Code, rec.Rule, rec.Duration)
		if rec.Stale {
			d.opts.Observer.ObserveStale(rec.Rule)
		}
		if rec.StackLabelMismatch != "" {
			d.opts.Observer.ObserveStackMismatch()
		}
	}
}

// causeText renders an error with its cause chain for the log (a
// conjur.Error prints its cause with %+v), bounded like the Err text.
func causeText(err error) string {
	return pluginapi.ClipTo(strings.ReplaceAll(fmt.Sprintf("%+v", err), "\n", "; "), maxCauseText)
}

// maxCauseText bounds the cause field of a log line.
const maxCauseText = 16 << 10
