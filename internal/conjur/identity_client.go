package conjur

import (
	"context"
	"sync"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

var errNoHandoff = &Error{Code: errcode.CredentialRejected,
	Msg: "this plugin signs a JWT for each identity the mapping chooses (CONJUR_SWARM_IDENTITY=per-request) and takes no handed-over credential: stop the bootstrap agent for it"}

// getAs is Get in the per-request identity mode: ref is fetched by its
// identity's layers.
func (c *Client) getAs(ctx context.Context, ref Ref) (Value, error) {
	if err := checkWorkload(ref); err != nil {
		c.status.failure(err)
		return Value{}, err
	}
	t, err := c.ids.get(ref.Workload)
	if err != nil {
		c.status.failure(err)
		return Value{}, err
	}
	gen := t.sess.generation()
	o := t.cache.get(ctx, ref)
	c.status.failure(o.err)
	c.keep(t.sess, ref, o, gen)
	return o.v, o.err
}

// getManyAs is GetMany in the per-request identity mode: refs (valid, the
// j-th answering out[idx[j]]) are grouped by identity, and each group is
// fetched by its identity's layers, the groups at once. No request carries
// two identities.
func (c *Client) getManyAs(ctx context.Context, refs []Ref, idx []int, out []Result) {
	groups := map[*tenant][]int{} // tenant -> positions in refs
	var order []*tenant
	for j, ref := range refs {
		if err := checkWorkload(ref); err != nil {
			out[idx[j]].Err = err
			continue
		}
		t, err := c.ids.get(ref.Workload)
		if err != nil {
			out[idx[j]].Err = err
			continue
		}
		if _, ok := groups[t]; !ok {
			order = append(order, t)
		}
		groups[t] = append(groups[t], j)
	}
	fetch := func(t *tenant) {
		pos := groups[t]
		mine := make([]Ref, len(pos))
		for k, j := range pos {
			mine[k] = refs[j]
		}
		gen := t.sess.generation()
		for k, o := range t.cache.getMany(ctx, mine) {
			out[idx[pos[k]]] = Result{Value: o.v, Err: o.err}
			c.keep(t.sess, mine[k], o, gen)
		}
	}
	var wg sync.WaitGroup
	for i, t := range order {
		if i == len(order)-1 { // the last group on the caller's goroutine
			fetch(t)
			break
		}
		wg.Go(func() { fetch(t) })
	}
	wg.Wait()
}
