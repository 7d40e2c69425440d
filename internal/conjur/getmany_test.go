package conjur

import (
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// An idle client fetches the latest versions GetMany asks for in one batch
// request, answers each ref in order, and reports a missing one alone.
func TestGetManyIsOneBatchRequest(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, clientConfig(s.key, s.listen(t, false).URL))
	mustGet(t, c, varID(0)) // warm token
	s.ResetCounts()
	refs := make([]Ref, 30)
	for i := range refs {
		refs[i] = Ref{ID: varID(i + 1)}
	}
	out := c.GetMany(t.Context(), refs)
	for i, r := range out {
		if r.Err != nil || string(r.Value.Data) != varValue(i+1) {
			t.Errorf("%s: %v, %+v", refs[i].ID, r.Value, r.Err)
		}
	}
	if b, one := s.Count(conjurdev.EpBatch), s.Count(conjurdev.EpSecret); b != 1 || one != 0 {
		t.Errorf("%d batch and %d single requests, want 1 and 0", b, one)
	}

	refs = append(refs, Ref{ID: "apps/missing"}, Ref{ID: ""})
	out = c.GetMany(t.Context(), refs)
	for i, r := range out[:30] {
		if r.Err != nil || string(r.Value.Data) != varValue(i+1) {
			t.Errorf("%s with a missing one beside it: %v, %+v", refs[i].ID, r.Value, r.Err)
		}
	}
	var e *Error
	if !asError(out[30].Err, &e) || e.Code != errcode.NotFound || e.Variable != "apps/missing" {
		t.Errorf("missing variable: %+v, want NOT_FOUND naming it", out[30].Err)
	}
	if CodeOf(out[31].Err) != errcode.BadRequest {
		t.Errorf("empty ref: %+v, want BAD_REQUEST", out[31].Err)
	}
	if st := c.Status(); st.LastErrorCode == "" {
		t.Errorf("status did not record GetMany's errors: %+v", st)
	}
}
