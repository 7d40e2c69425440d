package conjurdev

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

type planRecord struct {
	kind, ident, full string
	owner             string
	policy            string // full id of the defining policy
	annotations       []kv
	restrictedTo      []netip.Prefix // users and hosts
}

type planLink struct{ role, member, policy string }

type planPermit struct{ resource, privilege, role, policy string }

type plan struct {
	records  []*planRecord
	byID     map[string]*planRecord
	grants   []planLink
	revokes  []planLink
	permits  []planPermit
	denies   []planPermit
	deletes  []string
	refs     []resolvedRef
	hasWrite bool // !delete, !deny or !revoke present
}

type resolvedRef struct {
	full      string
	kind      string
	line, col int
}

// absIdent resolves a record id relative to the enclosing policy prefix
// ("" at root). A leading "/" makes it absolute; users inside a branch are
// "name@branch-with-dashes".
func absIdent(prefix, kind, id string) string {
	if strings.HasPrefix(id, "/") {
		return strings.TrimPrefix(id, "/")
	}
	if kind == "user" {
		if prefix == "" || strings.Contains(id, "@") {
			return id
		}
		return id + "@" + strings.ReplaceAll(prefix, "/", "-")
	}
	switch {
	case prefix == "":
		return id
	case id == "":
		return prefix
	default:
		return prefix + "/" + id
	}
}

// maxPlanLinks bounds the grants and permits one load may expand to
// (roles x members, roles x resources x privileges).
const maxPlanLinks = 1000000

type scope struct {
	prefix string // identifier prefix ("" at root)
	policy string // full id of the enclosing policy
	owner  string // default owner of records declared here
}

func (s *store) resolve(sc scope, stmts []stmt, p *plan) error {
	rv := resolver{st: s, p: p}
	for _, st := range stmts {
		var err error
		switch st.op {
		case opRecord:
			err = rv.record(sc, st)
		case opGrant, opRevoke:
			err = rv.links(sc, st)
		case opPermit, opDeny:
			err = rv.permits(sc, st)
		case opDelete:
			for _, r := range st.resources {
				rid, rerr := rv.ref(sc, r)
				if rerr != nil {
					return rerr
				}
				p.deletes = append(p.deletes, rid)
				p.hasWrite = true
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// resolver turns the statements of one load into its plan.
type resolver struct {
	st *store
	p  *plan
}

// ref is the full id of a reference in scope sc, noted for the check that
// it exists.
func (rv resolver) ref(sc scope, r ref) (string, error) {
	ident := absIdent(sc.prefix, r.kind, r.id)
	if ident == "" {
		return "", &conjurPolicyError{Line: r.line, Col: r.col, Msg: fmt.Sprintf("!%s needs an id here", r.kind)}
	}
	full := rv.st.fullID(r.kind, ident)
	rv.p.refs = append(rv.p.refs, resolvedRef{full: full, kind: r.kind, line: r.line, col: r.col})
	return full, nil
}

// record plans a declared record (and a policy's body).
func (rv resolver) record(sc scope, st stmt) error {
	ident := absIdent(sc.prefix, st.kind, st.id)
	if ident == "" {
		return &conjurPolicyError{Line: st.line, Col: st.col, Msg: fmt.Sprintf("!%s needs an id at the root policy", st.kind)}
	}
	full := rv.st.fullID(st.kind, ident)
	owner := sc.owner
	if st.owner != nil {
		o, err := rv.ref(sc, *st.owner)
		if err != nil {
			return err
		}
		owner = o
	}
	if _, dup := rv.p.byID[full]; dup {
		// Conjur's DuplicateResolver.
		return &conjurPolicyError{ruby: true, Msg: fmt.Sprintf("%s '%s' is declared more than once", strings.ReplaceAll(st.kind, "_", " "), ident)}
	}
	rec := &planRecord{kind: st.kind, ident: ident, full: full, owner: owner, policy: sc.policy,
		annotations: st.annotations, restrictedTo: st.restrictedTo}
	rv.p.byID[full] = rec
	rv.p.records = append(rv.p.records, rec)
	for _, l := range st.layers {
		// The host factory's role holds its layers, to grant them to
		// the hosts it creates.
		layer, err := rv.ref(sc, l)
		if err != nil {
			return err
		}
		rv.p.grants = append(rv.p.grants, planLink{role: layer, member: full, policy: sc.policy})
	}
	if st.kind == "policy" {
		return rv.st.resolve(scope{prefix: ident, policy: full, owner: full}, st.body, rv.p)
	}
	return nil
}

// links plans a !grant or !revoke.
func (rv resolver) links(sc scope, st stmt) error {
	if len(st.roles)*len(st.members)+len(rv.p.grants)+len(rv.p.revokes) > maxPlanLinks {
		return &conjurPolicyError{Line: st.line, Col: st.col, Msg: "policy too large: too many grants"}
	}
	for _, r := range st.roles {
		role, err := rv.ref(sc, r)
		if err != nil {
			return err
		}
		for _, m := range st.members {
			member, err := rv.ref(sc, m)
			if err != nil {
				return err
			}
			l := planLink{role: role, member: member, policy: sc.policy}
			if st.op == opGrant {
				rv.p.grants = append(rv.p.grants, l)
			} else {
				rv.p.revokes = append(rv.p.revokes, l)
				rv.p.hasWrite = true
			}
		}
	}
	return nil
}

// permits plans a !permit or !deny.
func (rv resolver) permits(sc scope, st stmt) error {
	if len(st.roles)*len(st.resources)*len(st.privileges)+len(rv.p.permits)+len(rv.p.denies) > maxPlanLinks {
		return &conjurPolicyError{Line: st.line, Col: st.col, Msg: "policy too large: too many permits"}
	}
	for _, r := range st.roles {
		role, err := rv.ref(sc, r)
		if err != nil {
			return err
		}
		for _, res := range st.resources {
			rid, err := rv.ref(sc, res)
			if err != nil {
				return err
			}
			for _, priv := range st.privileges {
				pp := planPermit{resource: rid, privilege: priv, role: role, policy: sc.policy}
				if st.op == opPermit {
					rv.p.permits = append(rv.p.permits, pp)
				} else {
					rv.p.denies = append(rv.p.denies, pp)
					rv.p.hasWrite = true
				}
			}
		}
	}
	return nil
}

// planConjurPolicy parses body and resolves it against the store at branch
// without changing anything. The caller holds s.mu (read is enough).
func (s *Server) planConjurPolicy(mode LoadMode, branch string, body []byte) (*plan, error) {
	st := s.st
	_, _, branchIdent, _ := splitID(branch)
	if blank(body) {
		// Conjur validates the PolicyVersion before parsing: an empty or
		// blank policy_text is not present.
		return nil, &StatusError{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
			Message: "policy_text is not present", Field: "policy_text", FieldMessage: "is not present"}
	}
	stmts, err := parseConjurPolicy(body)
	if err != nil {
		return nil, invalidConjurPolicy(err)
	}
	sc := scope{prefix: branchIdent, policy: branch, owner: branch}
	if branch == st.fullID("policy", "root") {
		sc = scope{prefix: "", policy: branch, owner: st.fullID("user", "admin")}
	}
	p := &plan{byID: map[string]*planRecord{}}
	if err := st.resolve(sc, stmts, p); err != nil {
		return nil, invalidConjurPolicy(err)
	}
	if mode == ModePost && p.hasWrite {
		// PolicyVersion#validate: a POST may not delete, deny or revoke.
		return nil, &StatusError{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
			Message: "policy_text may not contain deletion statements", Field: "policy_text", FieldMessage: "may not contain deletion statements"}
	}
	// Every reference must name a record declared here or existing already.
	for _, r := range p.refs {
		if _, ok := p.byID[r.full]; ok {
			continue
		}
		if _, ok := st.resources[r.full]; ok {
			continue
		}
		if isDeletion(p, r.full) {
			continue
		}
		// Conjur 1.22+ reports a missing record as an invalid policy.
		return nil, &StatusError{Status: http.StatusUnprocessableEntity, Code: "policy_invalid", Message: notFound(r.full).Message}
	}

	return p, nil
}
