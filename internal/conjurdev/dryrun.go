package conjurdev

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strings"
)

// Policy dry runs (?dryRun=true) as Conjur 1.24's Loader::DryRun reports
// them: the load is applied to a copy of the store, and every role and
// resource whose data (owner, policy, annotations, permissions,
// memberships) differs is listed: created (only after), updated (before
// and after) and deleted (only before), roles first, then variables and
// webservices, in DataObjects::PrimitiveFactory's shapes. What the caller
// cannot see is only named and typed.

type dryRunItems struct {
	Items []map[string]any `json:"items"`
}

// dryRunError is EnhancedPolicyError#as_validation: the position only for
// the parser's errors (null otherwise), the message followed by a line of
// advice (often empty), and the context.
type dryRunError struct {
	Line    *int          `json:"line"`
	Column  *int          `json:"column"`
	Message string        `json:"message"`
	Context dryRunContext `json:"context"`
}

// dryRunContext is where a dry run's error lies: the policy branch loaded
// and the lines at fault (none when the error has no position).
type dryRunContext struct {
	PolicyID       string `json:"policy_id"`
	OffendingLines []int  `json:"offending_lines"`
}

// dryRunInvalid is Loader::Validate's report of a failed dry run.
type dryRunInvalid struct {
	Status string        `json:"status"`
	Errors []dryRunError `json:"errors"`
}

// policyAdvice is Commands::Policy::ExplainError's advice for the
// messages the dev server produces that have one.
func policyAdvice(msg string) string {
	switch {
	case strings.HasPrefix(msg, "Unrecognized data type"):
		return "The tag must be one of the following: !delete, !deny, !grant, !group, !host, !host-factory, !layer, !permit, !policy, !revoke, !user, !variable, !webservice"
	case strings.HasPrefix(msg, "Invalid IP address or CIDR range") && !strings.Contains(msg, "Value has bits set to right of mask"):
		return "Make sure your address or range is in the correct format (e.g. 192.168.1.0 or 192.168.1.0/16)"
	}
	return ""
}

// newDryRunError is a failed load's error se as a dry run into branch
// reports it (EnhancedPolicyError#as_validation).
func newDryRunError(se *StatusError, branch string) dryRunError {
	_, _, ident, _ := splitID(branch)
	msg := se.Message
	out := dryRunError{Context: dryRunContext{PolicyID: ident, OffendingLines: []int{}}}
	switch {
	case se.Filename != "":
		line, col := se.Line, se.Col
		out.Line, out.Column, msg = &line, &col, se.detail
		if line > 0 {
			out.Context.OffendingLines = []int{line}
		}
	case se.yamlSyntax:
		// go-yaml words it "line N: problem"; Psych adds its context and column.
		line, col := 0, 0
		if n, err := fmt.Sscanf(msg, "line %d:", &line); n == 1 && err == nil {
			_, msg, _ = strings.Cut(msg, ": ")
			out.Context.OffendingLines = []int{line}
		}
		out.Line, out.Column = &line, &col
	}
	out.Message = msg + "\n" + policyAdvice(msg)
	return out
}

type dryRunJSON struct {
	Status  string      `json:"status"`
	Created dryRunItems `json:"created"`
	Updated struct {
		Before dryRunItems `json:"before"`
		After  dryRunItems `json:"after"`
	} `json:"updated"`
	Deleted  dryRunItems `json:"deleted"`
	Warnings []string    `json:"warnings,omitempty"`
}

func (s *Server) dryRun(w http.ResponseWriter, r *http.Request, c caller, mode LoadMode, body []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	branch, ok := s.mayLoad(w, r, c, mode)
	if !ok {
		return
	}
	out := dryRunJSON{Status: "Valid YAML"}
	empty := func() dryRunItems { return dryRunItems{Items: []map[string]any{}} }
	out.Created, out.Deleted, out.Updated.Before, out.Updated.After = empty(), empty(), empty(), empty()
	trial := &Server{account: s.account, st: s.st.clone(), clock: s.clock, log: s.log}
	res, err := trial.loadConjurPolicyLocked(mode, branch, body)
	if err != nil {
		var se *StatusError
		if !errors.As(err, &se) {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusUnprocessableEntity, dryRunInvalid{Status: "Invalid YAML", Errors: []dryRunError{newDryRunError(se, branch)}})
		return
	}
	for _, id := range dryRunOrder(s.st, trial.st) {
		before, after := s.st.primitive(id, c.role), trial.st.primitive(id, c.role)
		switch {
		case before == nil:
			out.Created.Items = append(out.Created.Items, after)
		case after == nil:
			out.Deleted.Items = append(out.Deleted.Items, before)
		case !reflect.DeepEqual(before, after):
			out.Updated.Before.Items = append(out.Updated.Before.Items, before)
			out.Updated.After.Items = append(out.Updated.After.Items, after)
		}
	}
	out.Warnings = res.Warnings
	writeJSON(w, http.StatusOK, out)
}

// dryRunOrder is every id of either store: roles, then the other
// resources, each sorted by id.
func dryRunOrder(a, b *store) []string {
	ids := slices.Collect(maps.Keys(a.resources))
	for id := range b.resources {
		if _, ok := a.resources[id]; !ok {
			ids = append(ids, id)
		}
	}
	isRole := func(id string) int {
		if roleKinds[kindOf(id)] {
			return 0
		}
		return 1
	}
	slices.SortFunc(ids, func(x, y string) int {
		if d := isRole(x) - isRole(y); d != 0 {
			return d
		}
		return strings.Compare(x, y)
	})
	return ids
}

// primitive is id's DataObjects primitive as role sees it, nil when id
// does not exist.
func (st *store) primitive(id, role string) map[string]any {
	res, ok := st.resources[id]
	if !ok {
		return nil
	}
	if !st.visible(role, res) {
		return map[string]any{"identifier": id, "type": res.kind}
	}
	out := map[string]any{
		"identifier": id, "id": res.ident, "type": res.kind, "owner": res.owner, "policy": res.policyID(),
		"annotations": map[string]string{},
	}
	for k, a := range res.annotations {
		out["annotations"].(map[string]string)[k] = a.value
	}
	if !res.isRole() {
		permitted := map[string][]string{}
		for priv, holders := range res.permits {
			for h := range holders {
				permitted[priv] = append(permitted[priv], h)
			}
			slices.Sort(permitted[priv])
		}
		out["permitted"] = permitted
		return out
	}
	permissions := map[string][]string{}
	for _, other := range st.resources {
		for priv, holders := range other.permits {
			if _, ok := holders[id]; ok {
				permissions[priv] = append(permissions[priv], other.id)
			}
		}
	}
	for priv := range permissions {
		slices.Sort(permissions[priv])
	}
	members, memberships := []string{}, []string{}
	for member, roles := range st.memberOf {
		if _, ok := roles[id]; ok {
			members = append(members, member)
		}
	}
	for r := range st.memberOf[id] {
		memberships = append(memberships, r)
	}
	slices.Sort(members)
	slices.Sort(memberships)
	restricted := []netip.Prefix{}
	if len(res.restrictedTo) > 0 {
		restricted = slices.Clone(res.restrictedTo)
	}
	out["permissions"], out["members"], out["memberships"], out["restricted_to"] = permissions, members, memberships, restricted
	return out
}

// clone copies the store for a trial load; values are shared (never
// modified in place).
func (st *store) clone() *store {
	c := newStore(st.account)
	for id, res := range st.resources {
		cp := *res
		cp.annotations = maps.Clone(res.annotations)
		cp.permits = map[string]map[string]string{}
		for priv, holders := range res.permits {
			cp.permits[priv] = maps.Clone(holders)
		}
		c.resources[id] = &cp
	}
	for member, roles := range st.memberOf {
		c.memberOf[member] = maps.Clone(roles)
	}
	c.policyVersions = maps.Clone(st.policyVersions)
	return c
}
