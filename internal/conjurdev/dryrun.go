package conjurdev

import (
	"errors"
	"net/http"
	"slices"
	"strings"
)

// dryRunItem is one record in a dry-run answer, in the shape conjur-api-go
// reads (conjurapi.Resource).
type dryRunItem struct {
	Identifier  string            `json:"identifier"`
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Owner       string            `json:"owner"`
	Policy      string            `json:"policy"`
	Annotations map[string]string `json:"annotations"`
}

type dryRunItems struct {
	Items []dryRunItem `json:"items"`
}

type dryRunError struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

type dryRunJSON struct {
	Status  string      `json:"status"`
	Created dryRunItems `json:"created"`
	Updated struct {
		Before dryRunItems `json:"before"`
		After  dryRunItems `json:"after"`
	} `json:"updated"`
	Deleted dryRunItems   `json:"deleted"`
	Errors  []dryRunError `json:"errors"`
}

func itemOf(res *resource) dryRunItem {
	it := dryRunItem{Identifier: res.ident, ID: res.id, Type: res.kind, Owner: res.owner, Policy: res.policy, Annotations: map[string]string{}}
	for k, a := range res.annotations {
		it.Annotations[k] = a.value
	}
	return it
}

func sortItems(items []dryRunItem) []dryRunItem {
	slices.SortFunc(items, func(a, b dryRunItem) int { return strings.Compare(a.ID, b.ID) })
	if items == nil {
		items = []dryRunItem{}
	}
	return items
}

// dryRun answers ?dryRun=true: it validates the policy against the current
// state and lists the records the load would create, update and delete,
// changing nothing (Conjur 1.21.1 and later).
func (s *Server) dryRun(w http.ResponseWriter, r *http.Request, c caller, mode LoadMode, body []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	branch, ok := s.mayLoad(w, r, c, mode)
	if !ok {
		return
	}
	out := dryRunJSON{Status: "Valid YAML", Errors: []dryRunError{}}
	p, err := s.planConjurPolicy(mode, branch, body)
	if err != nil {
		var se *StatusError
		if !errors.As(err, &se) {
			s.writeErr(w, err)
			return
		}
		out.Status = "Invalid YAML"
		out.Errors = []dryRunError{{Line: se.Line, Column: se.Col, Message: se.Message}}
		out.Created.Items, out.Updated.Before.Items, out.Updated.After.Items, out.Deleted.Items = sortItems(nil), sortItems(nil), sortItems(nil), sortItems(nil)
		writeJSON(w, http.StatusUnprocessableEntity, out)
		return
	}
	var created, before, after, deleted []dryRunItem
	for _, rec := range p.records {
		res, exists := s.st.resources[rec.full]
		if !exists {
			it := dryRunItem{Identifier: rec.ident, ID: rec.full, Type: rec.kind, Owner: rec.owner, Policy: rec.policy, Annotations: map[string]string{}}
			for _, a := range rec.annotations {
				it.Annotations[a.key] = a.value
			}
			created = append(created, it)
			continue
		}
		if mode == ModePost {
			continue
		}
		was := itemOf(res)
		now := itemOf(res)
		now.Owner, now.Policy = rec.owner, rec.policy
		for _, a := range rec.annotations {
			now.Annotations[a.key] = a.value
		}
		if now.Owner != was.Owner || now.Policy != was.Policy || len(rec.annotations) > 0 {
			before, after = append(before, was), append(after, now)
		}
	}
	gone := map[string]bool{}
	for _, id := range p.deletes {
		if res, ok := s.st.resources[id]; ok && !s.protected(id) && !gone[id] {
			gone[id] = true
			deleted = append(deleted, itemOf(res))
		}
	}
	if mode == ModePut {
		for id, res := range s.st.resources {
			if _, keep := p.byID[id]; keep || gone[id] || id == branch || s.protected(id) {
				continue
			}
			if s.st.inTree(branch, res.policy) {
				deleted = append(deleted, itemOf(res))
			}
		}
	}
	out.Created.Items, out.Deleted.Items = sortItems(created), sortItems(deleted)
	out.Updated.Before.Items, out.Updated.After.Items = sortItems(before), sortItems(after)
	writeJSON(w, http.StatusOK, out)
}
