package conjurdev

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

type permissionJSON struct {
	Privilege string `json:"privilege"`
	Role      string `json:"role"`
	Policy    string `json:"policy"`
}

type annotationJSON struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Policy string `json:"policy"`
}

type secretMetaJSON struct {
	Version   int     `json:"version"`
	ExpiresAt *string `json:"expires_at"`
}

type resourceJSON struct {
	CreatedAt   string           `json:"created_at"`
	ID          string           `json:"id"`
	Owner       string           `json:"owner"`
	Policy      string           `json:"policy,omitempty"`
	Permissions []permissionJSON `json:"permissions"`
	Annotations []annotationJSON `json:"annotations"`
	Secrets     []secretMetaJSON `json:"secrets,omitempty"`
	// Present (possibly empty) by kind, as Conjur's Resource#as_json:
	// restricted_to for users and hosts, policy_versions for policies.
	RestrictedTo   *[]netip.Prefix  `json:"restricted_to,omitempty"`
	PolicyVersions *[]policyVersion `json:"policy_versions,omitempty"`
}

// describe renders res as Conjur's resource JSON. Caller holds s.mu.
func (st *store) describe(res *resource) resourceJSON {
	out := resourceJSON{
		CreatedAt:   res.created.UTC().Format("2006-01-02T15:04:05.000+00:00"),
		ID:          res.id,
		Owner:       res.owner,
		Policy:      res.policy,
		Permissions: []permissionJSON{},
		Annotations: []annotationJSON{},
	}
	for priv, holders := range res.permits {
		for role, pol := range holders {
			out.Permissions = append(out.Permissions, permissionJSON{Privilege: priv, Role: role, Policy: pol})
		}
	}
	slices.SortFunc(out.Permissions, func(a, b permissionJSON) int {
		if c := strings.Compare(a.Privilege, b.Privilege); c != 0 {
			return c
		}
		return strings.Compare(a.Role, b.Role)
	})
	for name, a := range res.annotations {
		out.Annotations = append(out.Annotations, annotationJSON{Name: name, Value: a.value, Policy: a.policy})
	}
	slices.SortFunc(out.Annotations, func(a, b annotationJSON) int { return strings.Compare(a.Name, b.Name) })
	if res.kind == "variable" {
		out.Secrets = []secretMetaJSON{}
		for _, v := range res.versions {
			out.Secrets = append(out.Secrets, secretMetaJSON{Version: v.version})
		}
	}
	switch res.kind {
	case "host", "user":
		out.RestrictedTo = &[]netip.Prefix{}
		if len(res.restrictedTo) > 0 {
			out.RestrictedTo = &res.restrictedTo
		}
	case "policy":
		versions := append([]policyVersion{}, st.policyLog[res.id]...)
		out.PolicyVersions = &versions
	}
	return out
}

// listLimitMax is Conjur's api_resource_list_limit_max default: a listing
// without limit or offset gets this limit, and a larger one is refused
// (except 10000, which Conjur's synchronizer sends).
const listLimitMax = 1000

// rubyToI is Ruby's String#to_i: leading whitespace, an optional sign and
// the digits that follow; anything else gives 0.
func rubyToI(v string) int {
	v = strings.TrimLeft(v, " \t\n\v\f\r")
	sign, i := 1, 0
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		if v[i] == '-' {
			sign = -1
		}
		i++
	}
	n := 0
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		if n < 1<<40 {
			n = n*10 + int(v[i]-'0')
		}
	}
	return sign * n
}

// rubyNumeric is Conjur's numeric?: the text is exactly an integer as Ruby
// prints it ("1", "-2"; not "01", "+1" or "1.0").
func rubyNumeric(v string) bool {
	return v == strconv.Itoa(rubyToI(v))
}

// unprocessable is Conjur's UnprocessableEntity answer.
func unprocessable(msg string) *StatusError {
	return &StatusError{Status: http.StatusUnprocessableEntity, Code: "unprocessable_entity", Message: msg}
}

// page holds the limit and offset of a listing once checked.
type page struct {
	on            bool
	limit, offset int
}

// resourcePage checks limit and offset as Conjur's Resource.search does:
// with either given, limit must be a positive integer (default 10) and
// offset an integer of 0 or more.
func resourcePage(q url.Values, limit string, hasLimit bool) (page, *StatusError) {
	hasOffset := q.Has("offset")
	if !hasLimit && !hasOffset {
		return page{}, nil
	}
	p := page{on: true, limit: 10}
	if hasLimit {
		if !rubyNumeric(limit) || rubyToI(limit) <= 0 {
			return page{}, unprocessable("'limit' contains an invalid value. 'limit' must be a positive integer.")
		}
		p.limit = rubyToI(limit)
	}
	if hasOffset {
		o := q.Get("offset")
		if !rubyNumeric(o) || rubyToI(o) < 0 {
			return page{}, unprocessable("'offset' contains an invalid value. 'offset' must be an integer greater than or equal to 0.")
		}
		p.offset = rubyToI(o)
	}
	return p, nil
}

// apply cuts items to the page.
func pageOf[T any](items []T, p page) []T {
	if !p.on {
		return items
	}
	if p.offset >= len(items) {
		return items[:0]
	}
	items = items[p.offset:]
	if p.limit < len(items) {
		items = items[:p.limit]
	}
	return items
}

// assumedRole is Conjur's AssumedRole: the caller, or the role named by a
// full id in role= (or acting_as=) when it exists and the caller holds it
// (403 otherwise). Caller holds s.mu.
func (s *Server) assumedRole(id string, c caller) (string, bool) {
	if id == "" {
		return c.role, true
	}
	if _, ok := s.st.resources[id]; !ok || !roleKinds[kindOf(id)] {
		return "", false
	}
	_, held := s.st.closure(c.role)[id]
	return id, held
}

func kindOf(full string) string {
	_, k, _, _ := splitID(full)
	return k
}

// listResources answers GET /resources/{account}[/{kind}] as Conjur's
// resources#index: visible resources of the acting role, filtered by kind,
// owner and full-text search, sorted by id, paged, or counted.
func (s *Server) listResources(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	kind := r.PathValue("kind")
	if kind != "" && !resourceRoutedKinds[kind] {
		noRoute(w, r)
		return
	}
	if kind == "" {
		kind = q.Get("kind")
	}
	limit, hasLimit := q.Get("limit"), q.Has("limit")
	if !q.Has("count") {
		if !hasLimit && !q.Has("offset") {
			limit, hasLimit = strconv.Itoa(listLimitMax), true
		}
		if n := rubyToI(limit); hasLimit && n > listLimitMax && n != 10000 {
			writeError(w, unprocessable(fmt.Sprintf("'Limit' parameter must not exceed %d", listLimitMax)))
			return
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var owners map[string]struct{}
	if o := q.Get("owner"); q.Has("owner") {
		full, serr := s.st.makeFullID(o, r.PathValue("account"))
		if serr != nil {
			writeError(w, serr)
			return
		}
		if _, ok := s.st.resources[full]; !ok {
			writeError(w, notFound(full))
			return
		}
		owners = s.st.closure(full)
	}
	as := q.Get("role")
	if as == "" {
		as = q.Get("acting_as")
	}
	role, ok := s.assumedRole(as, c)
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	var search searchQuery
	if q.Has("search") {
		search = parseSearch(q.Get("search"))
	}
	pg, serr := resourcePage(q, limit, hasLimit)
	if serr != nil {
		writeError(w, serr)
		return
	}
	found := s.findResources(resourceFilter{kind: kind, account: r.PathValue("account"), owners: owners,
		search: search, hasSearch: q.Has("search"), role: role})
	slices.SortFunc(found, func(a, b *resource) int { return strings.Compare(a.id, b.id) })
	found = pageOf(found, pg)
	if q.Get("count") == "true" {
		writeJSON(w, http.StatusOK, map[string]int{"count": len(found)})
		return
	}
	out := make([]resourceJSON, 0, len(found))
	for _, res := range found {
		out = append(out, s.st.describe(res))
	}
	writeJSON(w, http.StatusOK, out)
}

// showResource answers GET /resources/{account}/{kind}/{id} and its ?check
// and ?permitted_roles forms (present with any value, as Conjur routes
// them).
// resourceRoutedKinds are the kinds Conjur's routes take under
// /resources (config/routes.rb); any other answers "No route matches".
var resourceRoutedKinds = map[string]bool{
	"variable": true, "public_key": true, "user": true, "host": true, "layer": true, "group": true,
	"policy": true, "webservice": true, "host_factory": true, "configuration": true,
}

func (s *Server) showResource(w http.ResponseWriter, r *http.Request, c caller) {
	if !resourceRoutedKinds[r.PathValue("kind")] {
		noRoute(w, r)
		return
	}
	q := r.URL.Query()
	full := r.PathValue("account") + ":" + r.PathValue("kind") + ":" + r.PathValue("id")
	s.mu.RLock()
	defer s.mu.RUnlock()
	res, ok := s.st.resources[full]
	visible := ok && s.st.visible(c.role, res)
	switch {
	case q.Has("check"):
		// Conjur: privilege is required (422); the role asked about must
		// be one the caller holds (403); the resource must be visible to
		// the caller (404); then 204 or 404.
		if !q.Has("privilege") {
			writeError(w, argumentError("privilege"))
			return
		}
		role, held := s.assumedRole(q.Get("role"), c)
		if !held {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if !visible {
			writeError(w, notFound(full))
			return
		}
		if s.st.can(role, res, q.Get("privilege")) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		return
	case q.Has("permitted_roles"):
		priv := q.Get("privilege")
		if priv == "" {
			priv = q.Get("permission")
		}
		if !q.Has("privilege") && !q.Has("permission") {
			writeError(w, argumentError("privilege"))
			return
		}
		if !visible {
			writeError(w, notFound(full))
			return
		}
		roles := []string{}
		for id, other := range s.st.resources {
			if other.isRole() && s.st.can(id, res, priv) {
				roles = append(roles, id)
			}
		}
		slices.Sort(roles)
		writeJSON(w, http.StatusOK, roles)
		return
	case !visible:
		writeError(w, notFound(full))
		return
	}
	writeJSON(w, http.StatusOK, s.st.describe(res))
}

// resourceFilter is what a resource listing keeps.
type resourceFilter struct {
	kind, account string
	owners        map[string]struct{} // nil: any owner
	search        searchQuery
	hasSearch     bool
	role          string // only resources this role can see
}

// findResources is every resource f keeps. The caller holds s.mu.
func (s *Server) findResources(f resourceFilter) []*resource {
	var found []*resource
	for _, res := range s.st.resources {
		if f.kind != "" && res.kind != f.kind {
			continue
		}
		if acct, _, _, _ := splitID(res.id); acct != f.account {
			continue
		}
		if f.owners != nil {
			if _, ok := f.owners[res.owner]; !ok {
				continue
			}
		}
		if f.hasSearch && !f.search.matches(res) {
			continue
		}
		if s.st.visible(f.role, res) {
			found = append(found, res)
		}
	}
	return found
}
