package conjur

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/response"
)

// The request for one variable's value (GET /secrets/{account}/variable/{id}),
// built and read by this package: conjur-api-go's RetrieveSecret parses the
// URL it has just joined, encodes the access token again, clones the
// headers for a debug line and copies the answer on every fetch, which in a
// storm of single fetches cost more CPU than the rest of the plugin's Get.
// The request is the one conjur-api-go sends (same URL, the same
// Authorization and Conjur-Source headers), through the same bounded,
// scrubbing transport (wire.go), under the same failover and 401 retry
// (authorized), and its error answer is read by conjur-api-go's own
// response.NewConjurError, so every check and error is the same.

// secretURLs are the parts of an endpoint's single-variable requests that
// do not change between requests, read once from its conjurapi client.
type secretURLs struct {
	prefix string // the URL of a variable without its escaped id: .../secrets/{account}/variable/
	source string // the Conjur-Source header conjur-api-go sends
}

// newSecretURLs reads, from c, the URL conjur-api-go builds for a variable
// of account, without the id. ok is false when that URL does not end in
// the id as expected; fetches then go through conjur-api-go.
func newSecretURLs(c *conjurapi.Client, account string) (secretURLs, bool) {
	const probe = "x"
	req, err := c.RetrieveSecretRequest(account + ":variable:" + probe)
	if err != nil {
		return secretURLs{}, false
	}
	u := req.URL.String()
	prefix, ok := strings.CutSuffix(u, "/variable/"+probe)
	if !ok || req.URL.RawQuery != "" {
		return secretURLs{}, false
	}
	return secretURLs{prefix: prefix + "/variable/", source: c.GetTelemetryHeader()}, true
}

// url is the URL of variable id at version (0: latest), as conjur-api-go
// writes it; ok is false for the ids it would not put in the path as they
// are ("." and ".." are resolved by its path.Join).
func (p secretURLs) url(id string, version int) (string, bool) {
	esc := url.PathEscape(id)
	if p.prefix == "" || esc == "." || esc == ".." {
		return "", false
	}
	u := p.prefix + esc
	if version > 0 {
		u += "?version=" + strconv.Itoa(version)
	}
	return u, true
}

// retrieveSecret fetches variable id (version 0: latest) from ep with tok,
// or through conjur-api-go (api) when this package cannot build the
// request as it would. Errors are conjur-api-go's: a transport error as
// net/http returns it, an error answer as a *response.ConjurError.
func (s *session) retrieveSecret(ctx context.Context, ep *endpoint, tok *accessToken, id string, version int) ([]byte, error) {
	u, ok := ep.secrets.url(id, version)
	if !ok || tok == nil {
		api := s.bind(ctx, ep.api, tok)
		full := s.cfg.Account + ":variable:" + id
		if version > 0 {
			return api.retrieveSecretAtVersion(full, version)
		}
		return api.retrieveSecret(full)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", tok.authorization())
	req.Header.Add(conjurapi.ConjurSourceHeader, ep.secrets.source)
	resp, err := s.bindHTTP(ctx).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, response.NewConjurError(resp)
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// oneAnswer pools the one-entry answer maps of single fetches: a sink reads
// the answers it is given before deliver returns and keeps no reference.
var oneAnswer = sync.Pool{New: func() any { return make(map[string]result, 1) }}

// deliverOne gives deliver the answer res for id, in a pooled map.
func deliverOne(deliver func(map[string]result), id string, res result) {
	m := oneAnswer.Get().(map[string]result)
	m[id] = res
	deliver(m)
	clear(m)
	oneAnswer.Put(m)
}
