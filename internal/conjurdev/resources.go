package conjurdev

import (
	"net/http"
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
	CreatedAt    string           `json:"created_at"`
	ID           string           `json:"id"`
	Owner        string           `json:"owner"`
	Policy       string           `json:"policy,omitempty"`
	Permissions  []permissionJSON `json:"permissions"`
	Annotations  []annotationJSON `json:"annotations"`
	Secrets      []secretMetaJSON `json:"secrets,omitempty"`
	RestrictedTo []string         `json:"restricted_to,omitempty"`
}

// describe renders res as Conjur's resource JSON. Caller holds s.mu.
func describe(res *resource) resourceJSON {
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
	if res.kind == "host" || res.kind == "user" {
		out.RestrictedTo = []string{}
	}
	return out
}

// actingRole is the role a resources request acts as: the caller, or the
// acting_as role when the caller holds it.
func (s *Server) actingRole(r *http.Request, c caller) (string, bool) {
	as := r.URL.Query().Get("acting_as")
	if as == "" {
		return c.role, true
	}
	role := s.roleID(as)
	_, ok := s.st.closure(c.role)[role]
	return role, ok
}

func (s *Server) listResources(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	kind := r.PathValue("kind")
	if kind == "" {
		kind = q.Get("kind")
	}
	search := strings.ToLower(q.Get("search"))
	limit, errL := atoiDefault(q.Get("limit"), 0)
	offset, errO := atoiDefault(q.Get("offset"), 0)
	if errL != nil || errO != nil || limit < 0 || offset < 0 {
		writeError(w, &StatusError{Status: http.StatusUnprocessableEntity, Code: "argument_error", Message: "limit and offset must be non-negative integers"})
		return
	}
	if r.PathValue("account") != s.account {
		writeJSON(w, http.StatusOK, []resourceJSON{})
		return
	}
	s.mu.RLock()
	role, ok := s.actingRole(r, c)
	if !ok {
		s.mu.RUnlock()
		w.WriteHeader(http.StatusForbidden)
		return
	}
	var found []*resource
	for _, res := range s.st.resources {
		if kind != "" && res.kind != kind {
			continue
		}
		if search != "" && !matchesSearch(res, search) {
			continue
		}
		if s.st.visible(role, res) {
			found = append(found, res)
		}
	}
	slices.SortFunc(found, func(a, b *resource) int { return strings.Compare(a.id, b.id) })
	if q.Get("count") == "true" {
		s.mu.RUnlock()
		writeJSON(w, http.StatusOK, map[string]int{"count": len(found)})
		return
	}
	if offset > len(found) {
		offset = len(found)
	}
	found = found[offset:]
	if limit > 0 && limit < len(found) {
		found = found[:limit]
	}
	out := make([]resourceJSON, 0, len(found))
	for _, res := range found {
		out = append(out, describe(res))
	}
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, out)
}

func matchesSearch(res *resource, search string) bool {
	if strings.Contains(strings.ToLower(res.ident), search) {
		return true
	}
	for _, a := range res.annotations {
		if strings.Contains(strings.ToLower(a.value), search) {
			return true
		}
	}
	return false
}

func atoiDefault(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}

func (s *Server) showResource(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	full := r.PathValue("account") + ":" + r.PathValue("kind") + ":" + r.PathValue("id")
	s.mu.RLock()
	defer s.mu.RUnlock()
	res, ok := s.st.resources[full]
	switch {
	case q.Get("check") == "true":
		role := c.role
		if q.Get("role") != "" {
			role = s.roleID(q.Get("role"))
			if _, exists := s.st.resources[role]; !exists {
				writeError(w, notFound(role))
				return
			}
		}
		if ok && s.st.can(role, res, q.Get("privilege")) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		return
	case !ok || !s.st.visible(c.role, res):
		writeError(w, notFound(full))
		return
	case q.Get("permitted_roles") == "true":
		priv := q.Get("privilege")
		var roles []string
		for id, other := range s.st.resources {
			if other.isRole() && s.st.can(id, res, priv) {
				roles = append(roles, id)
			}
		}
		slices.Sort(roles)
		if roles == nil {
			roles = []string{}
		}
		writeJSON(w, http.StatusOK, roles)
		return
	}
	writeJSON(w, http.StatusOK, describe(res))
}
