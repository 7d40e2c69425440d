package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// serveBundle fetches every member of dec's bundle together and renders the
// secret. If any member fails, the Get fails with that member's code and
// name (the first failing member by name); nothing partial is handed out.
// who is whom the members are read as (per-request identity mode), or nil.
func (d *Driver) serveBundle(ctx context.Context, start time.Time, rec *audit.Record, dec *policy.Decision, who *conjur.Workload) pluginapi.Response {
	members := dec.Bundle.Members
	refs := make([]conjur.Ref, len(members))
	for i, m := range members {
		refs[i] = fetchRef(dec, m.Variable, m.Version, who)
	}
	if dec.StaleIfError > 0 {
		d.stale.note(dec.Rule, refs...)
	}
	vals, errs := d.fetchMany(ctx, refs)
	rec.Cached = true
	for i, v := range vals {
		rec.Coalesced = rec.Coalesced || v.Coalesced
		rec.Cached = rec.Cached && v.Cached && errs[i] == nil
	}
	for i, err := range errs {
		if err != nil {
			code, msg := d.fetchFailure(err)
			if good, age, ok := d.lastGood(dec, refs[i], code); ok {
				markStale(rec, age, code)
				vals[i] = good
				continue
			}
			rec.Variable = members[i].Variable
			return d.finish(start, rec, code, fmt.Sprintf("bundle member %q: %s", members[i].Name, msg), err, nil)
		}
	}
	data := make([][]byte, len(vals))
	for i, v := range vals {
		data[i] = v.Data
	}
	return d.serveRendered(start, rec, dec, data)
}

// serveRendered renders fetched values as dec says (a bundle, or a field or
// decode of one value) and hands out the result.
func (d *Driver) serveRendered(start time.Time, rec *audit.Record, dec *policy.Decision, values [][]byte) pluginapi.Response {
	out, err := dec.Render(values)
	if err != nil {
		var ve *policy.ValueError
		if !errors.As(err, &ve) {
			return d.finish(start, rec, errcode.Internal, "the fetched values could not be rendered; see the plugin log", err, nil)
		}
		if ve.Member != "" {
			rec.Variable = dec.Bundle.Members[memberIndex(dec.Bundle.Members, ve.Member)].Variable
		}
		return d.finish(start, rec, errcode.ValueUnusable, ve.Error(), nil, nil)
	}
	return d.serve(start, rec, dec, out)
}

func memberIndex(ms []policy.Member, name string) int {
	for i, m := range ms {
		if m.Name == name {
			return i
		}
	}
	return 0
}

// fetchMany fetches refs together with the Conjur side's GetMany (one
// batch request on an idle client). The prefetch store is told every
// answer.
func (d *Driver) fetchMany(ctx context.Context, refs []conjur.Ref) ([]conjur.Value, []error) {
	vals := make([]conjur.Value, len(refs))
	errs := make([]error, len(refs))
	for i, r := range d.opts.Conjur.GetMany(ctx, refs) {
		vals[i], errs[i] = r.Value, r.Err
	}
	if d.pf != nil {
		for i, ref := range refs {
			d.pf.answered(ref, vals[i], errs[i])
		}
	}
	return vals, errs
}
