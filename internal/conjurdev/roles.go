package conjurdev

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

type membershipJSON struct {
	AdminOption bool   `json:"admin_option"`
	Ownership   bool   `json:"ownership"`
	Role        string `json:"role"`
	Member      string `json:"member"`
	Policy      string `json:"policy,omitempty"`
}

type roleJSON struct {
	CreatedAt string           `json:"created_at"`
	ID        string           `json:"id"`
	Policy    string           `json:"policy,omitempty"`
	Members   []membershipJSON `json:"members"`
}

func sortMemberships(ms []membershipJSON) {
	slices.SortFunc(ms, func(a, b membershipJSON) int {
		if c := strings.Compare(a.Role, b.Role); c != 0 {
			return c
		}
		return strings.Compare(a.Member, b.Member)
	})
}

// membersOf lists the direct members of role. Caller holds s.mu.
func (s *Server) membersOf(role string) []membershipJSON {
	out := []membershipJSON{}
	for member, roles := range s.st.memberOf {
		if e, ok := roles[role]; ok {
			out = append(out, membershipJSON{AdminOption: e.ownership, Ownership: e.ownership, Role: role, Member: member, Policy: e.policy})
		}
	}
	sortMemberships(out)
	return out
}

// roleRoutedKinds are the kinds Conjur routes under /roles.
var roleRoutedKinds = map[string]bool{"user": true, "host": true, "layer": true, "group": true, "policy": true, "host_factory": true}

// queryList reads a Rails array parameter: every NAME[]=v, or else the
// last NAME=v. ok is false when neither is present.
func queryList(q url.Values, name string) (vals []string, ok bool) {
	if v, has := q[name+"[]"]; has {
		return v, true
	}
	if v, has := q[name]; has && len(v) > 0 {
		return v[len(v)-1:], true
	}
	return nil, false
}

// roleFilter is the set of role ids in filter=, made full with the
// request's account (nil when filter= is absent).
func (s *Server) roleFilter(q url.Values, account string) (map[string]bool, *StatusError) {
	ids, ok := queryList(q, "filter")
	if !ok {
		return nil, nil
	}
	set := map[string]bool{}
	for _, id := range ids {
		full, err := s.st.makeFullID(id, account)
		if err != nil {
			return nil, err
		}
		set[full] = true
	}
	return set, nil
}

// membershipSearch is Conjur's MembershipSearch: kind= (one or a list)
// and search= (full text on the resource of the other role).
type membershipSearch struct {
	kinds     map[string]bool
	hasSearch bool
	search    searchQuery
}

func newMembershipSearch(q url.Values) membershipSearch {
	m := membershipSearch{}
	if ks, ok := queryList(q, "kind"); ok {
		m.kinds = map[string]bool{}
		for _, k := range ks {
			m.kinds[k] = true
		}
	}
	if q.Has("search") {
		m.hasSearch, m.search = true, parseSearch(q.Get("search"))
	}
	return m
}

// keep reports whether a membership whose other side is role passes.
func (m membershipSearch) keep(st *store, role string) bool {
	if m.kinds != nil && !m.kinds[kindOf(role)] {
		return false
	}
	return !m.hasSearch || m.search.matches(st.resources[role])
}

// showRole answers GET /roles/{account}/{kind}/{id} and its ?all,
// ?memberships and ?members forms (present with any value), for roles
// whose resource the caller can see, as Conjur's roles controller does.
// ?count (any value) answers {"count": n} instead of the list.
func (s *Server) showRole(w http.ResponseWriter, r *http.Request, c caller) {
	if !roleRoutedKinds[r.PathValue("kind")] {
		noRoute(w, r)
		return
	}
	account := r.PathValue("account")
	full := account + ":" + r.PathValue("kind") + ":" + r.PathValue("id")
	q := r.URL.Query()
	s.mu.RLock()
	defer s.mu.RUnlock()
	res, ok := s.st.resources[full]
	if !ok || !s.st.visible(c.role, res) {
		writeError(w, notFound(full))
		return
	}
	count := func(n int) { writeJSON(w, http.StatusOK, map[string]int{"count": n}) }
	switch {
	case q.Has("graph"):
		writeError(w, &StatusError{Status: http.StatusNotImplemented, Code: "not_implemented",
			Message: "the dev server does not draw role graphs (GET /roles/...?graph)"})
	case q.Has("all"):
		filter, err := s.roleFilter(q, account)
		if err != nil {
			writeError(w, err)
			return
		}
		all := []string{}
		for id := range s.st.closure(full) {
			if filter == nil || filter[id] {
				all = append(all, id)
			}
		}
		if q.Has("count") {
			count(len(all))
			return
		}
		slices.Sort(all)
		writeJSON(w, http.StatusOK, all)
	case q.Has("memberships"):
		filter, err := s.roleFilter(q, account)
		if err != nil {
			writeError(w, err)
			return
		}
		ms := newMembershipSearch(q)
		out := []membershipJSON{}
		for role, e := range s.st.memberOf[full] {
			if (filter == nil || filter[role]) && ms.keep(s.st, role) {
				out = append(out, membershipJSON{AdminOption: e.ownership, Ownership: e.ownership, Role: role, Member: full, Policy: e.policy})
			}
		}
		if q.Has("count") {
			count(len(out))
			return
		}
		sortMemberships(out)
		writeJSON(w, http.StatusOK, out)
	case q.Has("members"):
		ms := newMembershipSearch(q)
		out := []membershipJSON{}
		for _, m := range s.membersOf(full) {
			if ms.keep(s.st, m.Member) {
				out = append(out, m)
			}
		}
		if q.Has("count") {
			count(len(out))
			return
		}
		writeJSON(w, http.StatusOK, pageOf(out, memberPage(q)))
	default:
		writeJSON(w, http.StatusOK, roleJSON{
			CreatedAt: res.created.UTC().Format("2006-01-02T15:04:05.000+00:00"),
			ID:        full, Policy: res.policy, Members: s.membersOf(full),
		})
	}
}

// memberPage is the paging of ?members: Conjur applies limit and offset
// with Ruby's to_i and no checks, limit 10 when only offset is given.
func memberPage(q url.Values) page {
	if !q.Has("limit") && !q.Has("offset") {
		return page{}
	}
	p := page{on: true, limit: 10}
	if q.Has("limit") {
		p.limit = max(rubyToI(q.Get("limit")), 0)
	}
	if q.Has("offset") {
		p.offset = max(rubyToI(q.Get("offset")), 0)
	}
	return p
}
