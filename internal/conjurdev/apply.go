package conjurdev

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// LoadMode is how a policy load treats what exists already.
type LoadMode string

// Policy load modes, as the HTTP methods Conjur uses for them.
const (
	// ModePost adds records, grants and permits; it may not delete, deny or
	// revoke, and it does not change existing records' owners or
	// annotations.
	ModePost LoadMode = "POST"
	// ModePatch adds and updates, and applies !delete, !deny and !revoke.
	ModePatch LoadMode = "PATCH"
	// ModePut replaces: whatever the loaded policy (and policies below it)
	// defined before and the new document omits is deleted.
	ModePut LoadMode = "PUT"
)

// LoadResult is what a policy load answers.
type LoadResult struct {
	// CreatedRoles maps the full id of each user and host the load created
	// ("dev:host:swarm/x") to its API key.
	CreatedRoles map[string]redact.String
	// Version is the loaded policy's version after the load (1 for the
	// first load of that policy).
	Version int
}

type planRecord struct {
	kind, ident, full string
	owner             string
	policy            string // full id of the defining policy
	annotations       []kv
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
	refOf := func(r ref) (string, error) {
		ident := absIdent(sc.prefix, r.kind, r.id)
		if ident == "" {
			return "", &conjurPolicyError{Line: r.line, Col: r.col, Msg: fmt.Sprintf("!%s needs an id here", r.kind)}
		}
		full := s.fullID(r.kind, ident)
		p.refs = append(p.refs, resolvedRef{full: full, kind: r.kind, line: r.line, col: r.col})
		return full, nil
	}
	for _, st := range stmts {
		switch st.op {
		case opRecord:
			ident := absIdent(sc.prefix, st.kind, st.id)
			if ident == "" {
				return &conjurPolicyError{Line: st.line, Col: st.col, Msg: fmt.Sprintf("!%s needs an id at the root policy", st.kind)}
			}
			full := s.fullID(st.kind, ident)
			owner := sc.owner
			if st.owner != nil {
				o, err := refOf(*st.owner)
				if err != nil {
					return err
				}
				owner = o
			}
			rec, ok := p.byID[full]
			if !ok {
				rec = &planRecord{kind: st.kind, ident: ident, full: full}
				p.byID[full] = rec
				p.records = append(p.records, rec)
			}
			rec.owner, rec.policy = owner, sc.policy
			rec.annotations = append(rec.annotations, st.annotations...)
			if st.kind == "policy" {
				if err := s.resolve(scope{prefix: ident, policy: full, owner: full}, st.body, p); err != nil {
					return err
				}
			}
		case opGrant, opRevoke:
			if len(st.roles)*len(st.members)+len(p.grants)+len(p.revokes) > maxPlanLinks {
				return &conjurPolicyError{Line: st.line, Col: st.col, Msg: "policy too large: too many grants"}
			}
			for _, r := range st.roles {
				role, err := refOf(r)
				if err != nil {
					return err
				}
				for _, m := range st.members {
					member, err := refOf(m)
					if err != nil {
						return err
					}
					l := planLink{role: role, member: member, policy: sc.policy}
					if st.op == opGrant {
						p.grants = append(p.grants, l)
					} else {
						p.revokes = append(p.revokes, l)
						p.hasWrite = true
					}
				}
			}
		case opPermit, opDeny:
			if len(st.roles)*len(st.resources)*len(st.privileges)+len(p.permits)+len(p.denies) > maxPlanLinks {
				return &conjurPolicyError{Line: st.line, Col: st.col, Msg: "policy too large: too many permits"}
			}
			for _, r := range st.roles {
				role, err := refOf(r)
				if err != nil {
					return err
				}
				for _, res := range st.resources {
					rid, err := refOf(res)
					if err != nil {
						return err
					}
					for _, priv := range st.privileges {
						pp := planPermit{resource: rid, privilege: priv, role: role, policy: sc.policy}
						if st.op == opPermit {
							p.permits = append(p.permits, pp)
						} else {
							p.denies = append(p.denies, pp)
							p.hasWrite = true
						}
					}
				}
			}
		case opDelete:
			for _, r := range st.resources {
				rid, err := refOf(r)
				if err != nil {
					return err
				}
				p.deletes = append(p.deletes, rid)
				p.hasWrite = true
			}
		}
	}
	return nil
}

// kindTitle is the capitalised kind Conjur uses in not-found messages.
func kindTitle(kind string) string {
	if kind == "" {
		return ""
	}
	return strings.ToUpper(kind[:1]) + kind[1:]
}

// notFound is Conjur's RecordNotFound error for a full id.
func notFound(full string) *StatusError {
	acct, kind, ident, _ := splitID(full)
	return &StatusError{
		Status:  http.StatusNotFound,
		Code:    "not_found",
		Message: fmt.Sprintf("%s '%s' not found in account '%s'", kindTitle(kind), ident, acct),
		Target:  kind,
		ID:      full,
	}
}

func invalidConjurPolicy(err error) *StatusError {
	se := &StatusError{Status: http.StatusUnprocessableEntity, Code: "policy_invalid", Message: err.Error()}
	if pe, ok := err.(*conjurPolicyError); ok {
		se.Line, se.Col = pe.Line, pe.Col
	}
	return se
}

// planConjurPolicy parses body and resolves it against the store at branch
// without changing anything. The caller holds s.mu (read is enough).
func (s *Server) planConjurPolicy(mode LoadMode, branch string, body []byte) (*plan, error) {
	st := s.st
	_, _, branchIdent, _ := splitID(branch)
	invalidConjurPolicy := func(err error) *StatusError {
		se := invalidConjurPolicy(err)
		se.Filename = branchIdent
		return se
	}
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
		return nil, invalidConjurPolicy(&conjurPolicyError{Msg: "!delete, !deny and !revoke are not allowed when loading a policy with POST: use PATCH or PUT"})
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

// loadConjurPolicyLocked parses body and applies it at branch (a full policy id)
// in mode. The caller holds s.mu for writing and has checked permissions.
func (s *Server) loadConjurPolicyLocked(mode LoadMode, branch string, body []byte) (LoadResult, error) {
	st := s.st
	p, err := s.planConjurPolicy(mode, branch, body)
	if err != nil {
		return LoadResult{}, err
	}

	now := s.now()
	created := map[string]redact.String{}
	for _, rec := range p.records {
		res, exists := st.resources[rec.full]
		if !exists {
			res = &resource{
				id: rec.full, kind: rec.kind, ident: rec.ident, policy: rec.policy, created: now,
				annotations: map[string]annotation{}, permits: map[string]map[string]string{},
			}
			st.resources[rec.full] = res
			st.setOwner(res, rec.owner)
			if rec.kind == "user" || rec.kind == "host" {
				key, err := newAPIKey()
				if err != nil {
					return LoadResult{}, err
				}
				res.apiKey = key
				created[rec.full] = redact.String(key)
			}
		} else if mode != ModePost {
			res.policy = rec.policy
			st.setOwner(res, rec.owner)
		}
		given := map[string]bool{}
		for _, a := range rec.annotations {
			given[a.key] = true
			if _, had := res.annotations[a.key]; had && mode == ModePost {
				continue
			}
			res.annotations[a.key] = annotation{value: a.value, policy: rec.policy}
		}
		if mode == ModePut {
			for k, a := range res.annotations {
				if !given[k] && st.inTree(branch, a.policy) {
					delete(res.annotations, k)
				}
			}
		}
	}
	if mode == ModePut {
		s.replaceLocked(branch, p)
	}
	for _, g := range p.grants {
		if g.role == g.member {
			continue
		}
		if e, ok := st.memberOf[g.member][g.role]; ok && (e.ownership || mode == ModePost) {
			continue
		}
		st.addEdge(g.member, g.role, edge{policy: g.policy})
	}
	for _, pp := range p.permits {
		res := st.resources[pp.resource]
		holders := res.permits[pp.privilege]
		if holders == nil {
			holders = map[string]string{}
			res.permits[pp.privilege] = holders
		}
		if _, ok := holders[pp.role]; ok && mode == ModePost {
			continue
		}
		holders[pp.role] = pp.policy
	}
	for _, r := range p.revokes {
		if e, ok := st.memberOf[r.member][r.role]; ok && !e.ownership {
			st.removeEdge(r.member, r.role)
		}
	}
	for _, d := range p.denies {
		if res, ok := st.resources[d.resource]; ok {
			delete(res.permits[d.privilege], d.role)
		}
	}
	for _, id := range p.deletes {
		if res, ok := st.resources[id]; ok && !s.protected(id) {
			st.deleteResource(res)
			delete(created, id)
		}
	}
	st.invalidate()
	st.policyVersions[branch]++
	s.saveLocked()
	return LoadResult{CreatedRoles: created, Version: st.policyVersions[branch]}, nil
}

func isDeletion(p *plan, full string) bool {
	for _, d := range p.deletes {
		if d == full {
			return true
		}
	}
	for _, d := range p.denies {
		if d.resource == full || d.role == full {
			return true
		}
	}
	for _, r := range p.revokes {
		if r.role == full || r.member == full {
			return true
		}
	}
	return false
}

// protected reports the records no policy may delete: the admin user and
// the root policy.
func (s *Server) protected(full string) bool {
	return full == s.st.fullID("user", "admin") || full == s.st.fullID("policy", "root")
}

// replaceLocked deletes what policies in branch's tree defined before and
// the plan no longer declares: records, grants and permits.
func (s *Server) replaceLocked(branch string, p *plan) {
	st := s.st
	for id, res := range st.resources {
		if id == branch || s.protected(id) {
			continue
		}
		if _, keep := p.byID[id]; keep {
			continue
		}
		if st.inTree(branch, res.policy) {
			st.deleteResource(res)
		}
	}
	keepGrant := map[[2]string]bool{}
	for _, g := range p.grants {
		keepGrant[[2]string{g.member, g.role}] = true
	}
	for member, roles := range st.memberOf {
		for role, e := range roles {
			if e.ownership || keepGrant[[2]string{member, role}] {
				continue
			}
			if st.inTree(branch, e.policy) {
				st.removeEdge(member, role)
			}
		}
	}
	keepPermit := map[[3]string]bool{}
	for _, pp := range p.permits {
		keepPermit[[3]string{pp.resource, pp.privilege, pp.role}] = true
	}
	for id, res := range st.resources {
		for priv, holders := range res.permits {
			for role, pol := range holders {
				if !keepPermit[[3]string{id, priv, role}] && st.inTree(branch, pol) {
					delete(holders, role)
				}
			}
		}
	}
}

// roles returns the created roles' ids, sorted.
func (r LoadResult) roles() []string {
	ids := make([]string, 0, len(r.CreatedRoles))
	for id := range r.CreatedRoles {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// String names the version and the created roles (their keys are redacted).
func (r LoadResult) String() string {
	return fmt.Sprintf("conjurdev.LoadResult{Version:%d CreatedRoles:[%s] (API keys redacted)}",
		r.Version, strings.Join(r.roles(), " "))
}
