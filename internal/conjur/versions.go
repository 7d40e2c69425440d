package conjur

import (
	"context"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

// ResourcePageSize is how many variables one resource listing asks for
// (Conjur's default and usual cap is 1000).
const ResourcePageSize = 1000

// maxResourcePages bounds one Versions call's listing.
const maxResourcePages = 100

// Versions returns the current version of each variable id of account that
// the identity can see, from Conjur's resource metadata (the `secrets` list
// of a variable resource): it never fetches a value, so `read` on the
// variables is enough and `execute` is not needed. An id the identity cannot
// see, or that has no value yet, is absent from the map.
//
// It makes as few requests as the API allows: one resource request for a
// single id (or for ids of another account, one each), else the listing of
// the variables the identity can see (kind=variable), ResourcePageSize at a
// time, until every id is found or the list ends. Each request goes through
// the session like a fetch: FetchTimeout, TLS settings, follower failover,
// one re-authentication on a 401; Close cancels it. Values are not cached
// and the value cache is not touched.
func (c *Client) Versions(ctx context.Context, account string, ids []string) (map[string]int, error) {
	out := make(map[string]int, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	if account == "" {
		account = c.sess.cfg.Account
	}
	prefix := account + ":variable:"
	want := make(map[string]string, len(ids)) // full id -> id
	for _, id := range ids {
		want[prefix+id] = id
	}
	if len(ids) == 1 || account != c.sess.cfg.Account {
		for full, id := range want {
			res, err := c.sess.resource(ctx, full, id)
			c.status.failure(err)
			if err != nil {
				return nil, err
			}
			if v, ok := latestVersion(res); ok {
				out[id] = v
			}
		}
		return out, nil
	}
	for page := 0; page < maxResourcePages && len(out) < len(want); page++ {
		list, err := c.sess.resources(ctx, &conjurapi.ResourceFilter{Kind: "variable", Limit: ResourcePageSize, Offset: page * ResourcePageSize})
		c.status.failure(err)
		if err != nil {
			return nil, err
		}
		for _, res := range list {
			full, _ := res["id"].(string)
			if id, ok := want[full]; ok {
				if v, ok := latestVersion(res); ok {
					out[id] = v
				}
			}
		}
		if len(list) < ResourcePageSize {
			break
		}
	}
	return out, nil
}

// resource reads one resource's metadata with one request; a missing or
// invisible one (404) is nil, not an error. id names it in errors.
func (s *session) resource(ctx context.Context, full, id string) (map[string]any, error) {
	var res map[string]any
	err := s.metadata(ctx, id, func(api apiOps) error {
		r, err := api.resource(full)
		if err == nil {
			res = r
		}
		return err
	})
	if httpStatus(err) == 404 { // through the *Error to Conjur's answer
		return nil, nil
	}
	return res, err
}

// resources lists resources with one request.
func (s *session) resources(ctx context.Context, f *conjurapi.ResourceFilter) ([]map[string]any, error) {
	var list []map[string]any
	err := s.metadata(ctx, "", func(api apiOps) error {
		l, err := api.resources(f)
		if err == nil {
			list = l
		}
		return err
	})
	return list, err
}

// metadata runs one metadata request on the caller's goroutine, counted by
// the lifecycle (Close cancels and waits for it) and bounded by FetchTimeout.
func (s *session) metadata(ctx context.Context, id string, do func(apiOps) error) error {
	if !s.life.enter() {
		return errClosed
	}
	defer s.life.done()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	defer context.AfterFunc(s.life.ctx, cancel)()
	_, err := s.withFailover(ctx, func(ctx context.Context, ep *endpoint) error {
		return s.authorized(ctx, ep, do)
	})
	if err != nil {
		return s.finalError(ctx, err, id)
	}
	return nil
}

// latestVersion is the highest version in a variable resource's `secrets`
// list; false when it has none.
func latestVersion(res map[string]any) (int, bool) {
	secrets, _ := res["secrets"].([]any)
	best := 0
	for _, s := range secrets {
		m, _ := s.(map[string]any)
		if v, ok := m["version"].(float64); ok && int(v) > best {
			best = int(v)
		}
	}
	return best, best > 0
}
