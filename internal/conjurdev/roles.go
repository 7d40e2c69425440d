package conjurdev

import (
	"net/http"
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

// showRole answers GET /roles/{account}/{kind}/{id} and its ?members,
// ?memberships and ?all forms, for roles the caller can see (its own, the
// ones it holds, and those it has a privilege on).
func (s *Server) showRole(w http.ResponseWriter, r *http.Request, c caller) {
	full := r.PathValue("account") + ":" + r.PathValue("kind") + ":" + r.PathValue("id")
	q := r.URL.Query()
	s.mu.RLock()
	defer s.mu.RUnlock()
	res, ok := s.st.resources[full]
	if ok && res.isRole() {
		_, holds := s.st.closure(c.role)[full]
		ok = holds || s.st.visible(c.role, res)
	}
	if !ok {
		writeError(w, notFound(full))
		return
	}
	switch {
	case q.Has("all"):
		all := make([]string, 0)
		for id := range s.st.closure(full) {
			all = append(all, id)
		}
		slices.Sort(all)
		writeJSON(w, http.StatusOK, all)
	case q.Has("memberships"):
		out := []membershipJSON{}
		for role, e := range s.st.memberOf[full] {
			out = append(out, membershipJSON{AdminOption: e.ownership, Ownership: e.ownership, Role: role, Member: full, Policy: e.policy})
		}
		sortMemberships(out)
		writeJSON(w, http.StatusOK, out)
	case q.Has("members"):
		writeJSON(w, http.StatusOK, s.membersOf(full))
	default:
		writeJSON(w, http.StatusOK, roleJSON{
			CreatedAt: res.created.UTC().Format("2006-01-02T15:04:05.000+00:00"),
			ID:        full, Policy: res.policy, Members: s.membersOf(full),
		})
	}
}
