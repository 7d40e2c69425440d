package conjurdev

import (
	"errors"
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
	// Warnings are Conjur 1.24's warnings for annotations named like a
	// policy attribute (an annotation "owner" sets no owner).
	Warnings []string
}

// knownPolicyAttributes are the names PoliciesController warns about
// when an annotation takes one.
var knownPolicyAttributes = map[string]bool{
	"id": true, "owner": true, "body": true, "user": true, "annotations": true, "restricted_to": true,
	"permit": true, "deny": true, "role": true, "privileges": true, "resource": true, "grant": true,
	"revoke": true, "member": true, "host-factory": true, "layers": true, "layer": true, "variable": true,
	"kind": true, "mime_type": true, "delete": true, "record": true, "group": true, "host": true, "webservice": true,
}

// annotationWarnings are the plan's annotation names that are policy
// attributes, each once, in the order the document gives them.
func annotationWarnings(p *plan) []string {
	var out []string
	seen := map[string]bool{}
	for _, rec := range p.records {
		for _, a := range rec.annotations {
			if knownPolicyAttributes[a.key] && !seen[a.key] {
				seen[a.key] = true
				out = append(out, "Annotation '"+a.key+"' matches a known policy attribute. This annotation will not be treated as a standard attribute and may not have the intended effect.")
			}
		}
	}
	return out
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

// invalidConjurPolicy is how Conjur's ApplicationController renders a
// policy error: 422 policy_invalid with the message, and for the parser's
// Invalid errors an innererror naming the file ("policy") and position.
// A YAML syntax error escapes every rescue_from in Conjur 1.24 and ends in
// Rails' bare 500 (see yamlSyntaxError).
func invalidConjurPolicy(err error) *StatusError {
	var ys *yamlSyntaxError
	if errors.As(err, &ys) {
		return &StatusError{Status: http.StatusInternalServerError, Code: "invalid_yaml", Message: ys.msg, yamlSyntax: true}
	}
	se := &StatusError{Status: http.StatusUnprocessableEntity, Code: "policy_invalid", Message: err.Error()}
	if pe, ok := err.(*conjurPolicyError); ok && !pe.ruby {
		se.Line, se.Col, se.Filename, se.detail = pe.Line, pe.Col, "policy", pe.Msg
	}
	return se
}

// loadConjurPolicyLocked parses body and applies it at branch (a full policy id)
// in mode. The caller holds s.mu for writing and has checked permissions.
func (s *Server) loadConjurPolicyLocked(mode LoadMode, branch string, body []byte) (LoadResult, error) {
	st := s.st
	p, err := s.planConjurPolicy(mode, branch, body)
	if err != nil {
		return LoadResult{}, err
	}
	created, err := s.applyRecords(mode, branch, p)
	if err != nil {
		return LoadResult{}, err
	}
	if mode == ModePut {
		s.replaceLocked(branch, p)
	}
	st.applyLinks(mode, p)
	for _, id := range p.deletes {
		if res, ok := st.resources[id]; ok && !s.protected(id) {
			st.deleteResource(res)
			delete(created, id)
		}
	}
	st.invalidate()
	st.policyVersions[branch]++
	s.saveLocked()
	return LoadResult{CreatedRoles: created, Version: st.policyVersions[branch], Warnings: annotationWarnings(p)}, nil
}

// applyRecords creates the plan's new records (users and hosts with an
// API key, returned by id) and sets owners and annotations as mode does:
// POST adds only, PATCH and PUT update, PUT also drops the annotations
// the branch set and the document no longer gives.
func (s *Server) applyRecords(mode LoadMode, branch string, p *plan) (map[string]redact.String, error) {
	st := s.st
	now := s.now()
	created := map[string]redact.String{}
	for _, rec := range p.records {
		res, exists := st.resources[rec.full]
		if !exists {
			res = &resource{
				id: rec.full, kind: rec.kind, ident: rec.ident, policy: rec.policy, loadedBy: branch, created: now,
				annotations: map[string]annotation{}, permits: map[string]map[string]string{},
			}
			st.resources[rec.full] = res
			st.setOwner(res, rec.owner)
			if rec.kind == "user" || rec.kind == "host" {
				key, err := newAPIKey()
				if err != nil {
					return nil, err
				}
				res.apiKey = key
				created[rec.full] = redact.String(key)
			}
		} else if mode != ModePost {
			res.policy, res.loadedBy = rec.policy, branch
			st.setOwner(res, rec.owner)
		}
		if res.isRole() && (res.kind == "user" || res.kind == "host") {
			res.restrictedTo = mergeRestrictedTo(mode, res.restrictedTo, rec.restrictedTo)
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
	return created, nil
}

// applyLinks applies the plan's grants, permits, revokes and denies; POST
// keeps what exists.
func (st *store) applyLinks(mode LoadMode, p *plan) {
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
