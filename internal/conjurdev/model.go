package conjurdev

import (
	"bytes"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// maxVersions is how many values of a variable are kept, as in Conjur.
const maxVersions = 20

// roleKinds are the kinds whose resources are also roles.
var roleKinds = map[string]bool{"user": true, "host": true, "group": true, "layer": true, "policy": true, "host_factory": true}

// recordKinds are every kind a policy may declare.
var recordKinds = map[string]bool{
	"user": true, "host": true, "group": true, "layer": true, "policy": true,
	"variable": true, "webservice": true, "host_factory": true,
}

type annotation struct {
	value  string
	policy string // full id of the policy that set it
}

type secretVersion struct {
	version int
	value   []byte
}

// resource is one Conjur resource; for role kinds it is the role as well.
type resource struct {
	id     string // full id "acct:kind:identifier"
	kind   string
	ident  string
	owner  string // full role id
	policy string // full id of the policy that defined it
	// loadedBy is the policy whose load last defined it: Conjur's
	// policy_id (Loader::Orchestrate#policy_id), which is the branch
	// loaded, not the policy block the record sits in. "" before it was
	// kept: policy stands in.
	loadedBy string
	created  time.Time

	annotations map[string]annotation
	// permits: privilege -> role id -> defining policy
	permits map[string]map[string]string

	apiKey string // users and hosts
	// restrictedTo: users and hosts, the CIDRs they may authenticate
	// from (each marshals as its normalised text); none means anywhere.
	restrictedTo []netip.Prefix
	password     string // users, once set with PUT /authn/{account}/password
	versions     []secretVersion
	nextVer      int // the version the next value gets
}

func (r *resource) isRole() bool { return roleKinds[r.kind] }

// policyID is Conjur's policy_id of r.
func (r *resource) policyID() string {
	if r.loadedBy != "" {
		return r.loadedBy
	}
	return r.policy
}

func (r *resource) mimeType() string {
	if a, ok := r.annotations["conjur/mime_type"]; ok && a.value != "" {
		return a.value
	}
	return "application/octet-stream"
}

func (r *resource) latest() (secretVersion, bool) {
	if len(r.versions) == 0 {
		return secretVersion{}, false
	}
	return r.versions[len(r.versions)-1], true
}

func (r *resource) version(n int) (secretVersion, bool) {
	for _, v := range r.versions {
		if v.version == n {
			return v, true
		}
	}
	return secretVersion{}, false
}

// addValue stores v as a new version, unless it equals the latest one:
// Conjur 1.22+ creates a version only when the value changes.
func (r *resource) addValue(v []byte) {
	if cur, ok := r.latest(); ok && bytes.Equal(cur.value, v) {
		return
	}
	cp := append([]byte(nil), v...)
	if r.nextVer == 0 {
		r.nextVer = 1
	}
	r.versions = append(r.versions, secretVersion{version: r.nextVer, value: cp})
	r.nextVer++
	if len(r.versions) > maxVersions {
		r.versions = append([]secretVersion(nil), r.versions[len(r.versions)-maxVersions:]...)
	}
}

// edge is one role membership: member holds role.
type edge struct {
	policy    string // defining policy
	ownership bool   // created because member owns role
}

// store is the whole state. Its maps are guarded by Server.mu.
type store struct {
	account   string
	resources map[string]*resource
	// memberOf: member role id -> role id -> edge (member is a member of role)
	memberOf map[string]map[string]edge
	// policyVersions: policy full id -> number of loads so far
	policyVersions map[string]int
	// apiEnabled is whether an authenticator ("authn-jwt/<id>") was
	// enabled through the API (PATCH), Conjur's authenticator_configs
	// table.
	apiEnabled map[string]bool
	// policyLog: policy full id -> its last maxPolicyLog loads, Conjur's
	// policy_versions (not kept in the rehearsal state).
	policyLog map[string][]policyVersion
	// hfTokens are the host factory tokens by token (not kept in the
	// rehearsal state).
	hfTokens map[string]hfToken

	closureMu sync.Mutex
	closures  map[string]map[string]struct{}
}

func newStore(account string) *store {
	return &store{
		account:        account,
		resources:      map[string]*resource{},
		memberOf:       map[string]map[string]edge{},
		policyVersions: map[string]int{},
		apiEnabled:     map[string]bool{},
		hfTokens:       map[string]hfToken{},
		policyLog:      map[string][]policyVersion{},
		closures:       map[string]map[string]struct{}{},
	}
}

// addAdminAndRoot creates what every Conjur account starts with: the
// admin user (owning itself) and the root policy (owned by admin).
func (s *store) addAdminAndRoot(adminKey string, now time.Time) {
	admin := &resource{
		id: s.fullID("user", "admin"), kind: "user", ident: "admin", created: now,
		annotations: map[string]annotation{}, permits: map[string]map[string]string{},
		apiKey: adminKey,
	}
	root := &resource{
		id: s.fullID("policy", "root"), kind: "policy", ident: "root", created: now,
		annotations: map[string]annotation{}, permits: map[string]map[string]string{},
	}
	admin.policy, root.policy = root.id, root.id
	s.resources[admin.id] = admin
	s.resources[root.id] = root
	s.setOwner(admin, admin.id)
	s.setOwner(root, admin.id)
}

func (s *store) fullID(kind, ident string) string { return s.account + ":" + kind + ":" + ident }

// makeFullID is Conjur's Role.make_full_id: "kind:id" gets the account
// of the request, "acct:kind:id" stays; fewer than two parts is an error.
func (s *store) makeFullID(id, account string) (string, *StatusError) {
	parts := strings.SplitN(id, ":", 3)
	switch len(parts) {
	case 3:
		return id, nil
	case 2:
		return account + ":" + id, nil
	}
	return "", argumentError("Expected at least 2 tokens in " + id)
}

// splitID splits "acct:kind:ident".
func splitID(id string) (acct, kind, ident string, ok bool) {
	a, rest, ok1 := strings.Cut(id, ":")
	k, i, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || a == "" || k == "" || i == "" {
		return "", "", "", false
	}
	return a, k, i, true
}

// invalidate drops the cached role closures; call after any membership or
// ownership change (with the write lock held).
func (s *store) invalidate() {
	s.closureMu.Lock()
	s.closures = map[string]map[string]struct{}{}
	s.closureMu.Unlock()
}

// closure is every role that role holds, itself included, following grants
// and ownership transitively. Callers hold at least the read lock.
func (s *store) closure(role string) map[string]struct{} {
	s.closureMu.Lock()
	c, ok := s.closures[role]
	s.closureMu.Unlock()
	if ok {
		return c
	}
	c = map[string]struct{}{role: {}}
	queue := []string{role}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for r := range s.memberOf[cur] {
			if _, seen := c[r]; !seen {
				c[r] = struct{}{}
				queue = append(queue, r)
			}
		}
	}
	s.closureMu.Lock()
	s.closures[role] = c
	s.closureMu.Unlock()
	return c
}

// can reports whether role holds privilege on res (ownership counts).
func (s *store) can(role string, res *resource, privilege string) bool {
	c := s.closure(role)
	if _, ok := c[res.owner]; ok {
		return true
	}
	for holder := range res.permits[privilege] {
		if _, ok := c[holder]; ok {
			return true
		}
	}
	return false
}

// visible reports whether role holds any privilege on res.
func (s *store) visible(role string, res *resource) bool {
	c := s.closure(role)
	if _, ok := c[res.owner]; ok {
		return true
	}
	for _, holders := range res.permits {
		for holder := range holders {
			if _, ok := c[holder]; ok {
				return true
			}
		}
	}
	return false
}

func (s *store) addEdge(member, role string, e edge) {
	m := s.memberOf[member]
	if m == nil {
		m = map[string]edge{}
		s.memberOf[member] = m
	}
	if old, ok := m[role]; ok && old.ownership && !e.ownership {
		// keep the ownership edge; a grant on top of it changes nothing
		return
	}
	m[role] = e
}

func (s *store) removeEdge(member, role string) {
	if m := s.memberOf[member]; m != nil {
		delete(m, role)
		if len(m) == 0 {
			delete(s.memberOf, member)
		}
	}
}

// setOwner changes res's owner, keeping the ownership membership in step.
func (s *store) setOwner(res *resource, owner string) {
	if res.owner == owner {
		return
	}
	if res.isRole() && res.owner != "" {
		if e, ok := s.memberOf[res.owner][res.id]; ok && e.ownership {
			s.removeEdge(res.owner, res.id)
		}
	}
	res.owner = owner
	// Conjur's grant_role_membership_to_owner trigger grants a role to its
	// owner, also when the role owns itself (the admin user): the admin is
	// then a member of itself.
	if res.isRole() && owner != "" {
		s.addEdge(owner, res.id, edge{policy: res.policy, ownership: true})
	}
}

// deleteResource removes res, its permits, its memberships and the permits
// it held on other resources.
func (s *store) deleteResource(res *resource) {
	delete(s.resources, res.id)
	if res.isRole() {
		delete(s.memberOf, res.id)
		for member, roles := range s.memberOf {
			if _, ok := roles[res.id]; ok {
				s.removeEdge(member, res.id)
			}
		}
		for _, other := range s.resources {
			for _, holders := range other.permits {
				delete(holders, res.id)
			}
		}
	}
}

// inTree reports whether policy is branch or lies below it. branch and
// policy are full policy ids; the root policy's tree is everything.
func (s *store) inTree(branch, policy string) bool {
	if branch == s.fullID("policy", "root") {
		return true
	}
	return policy == branch || strings.HasPrefix(policy, branch+"/")
}
