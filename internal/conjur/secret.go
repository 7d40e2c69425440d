package conjur

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/response"
)

// The requests for variables' values, GET /secrets/{account}/variable/{id}
// for one and GET /secrets?variable_ids=... (base64 values) for a batch,
// built and read by this package: conjur-api-go's RetrieveSecret parses the
// URL it has just joined, encodes the access token again, clones the
// headers for a debug line and copies the answer on every fetch, which in a
// storm of single fetches cost more CPU than the rest of the plugin's Get
// (and its batch, RetrieveBatchSecretsSafe, all that and two more maps).
// Each request is the one conjur-api-go sends (same URL, the same
// Authorization, Conjur-Source and Accept-Encoding headers), through the same bounded,
// scrubbing transport (wire.go), under the same failover and 401 retry
// (authorized), and its error answer is read by conjur-api-go's own
// response.NewConjurError, so every check and error is the same.

// secretURLs are the parts of an endpoint's variable requests that do not
// change between requests, read once from its conjurapi client.
type secretURLs struct {
	prefix string // the URL of a variable without its escaped id: .../secrets/{account}/variable/
	batch  string // the URL of a batch without its escaped ids: .../secrets?variable_ids=
	source string // the Conjur-Source header conjur-api-go sends
}

// newSecretURLs reads, from c, the URLs conjur-api-go builds for a variable
// of account and for a batch, without the ids. ok is false when they do
// not end in the id as expected; fetches then go through conjur-api-go.
func newSecretURLs(c *conjurapi.Client, account string) (secretURLs, bool) {
	const probe = "x"
	full := account + ":variable:" + probe
	one, err := c.RetrieveSecretRequest(full)
	if err != nil {
		return secretURLs{}, false
	}
	prefix, ok := strings.CutSuffix(one.URL.String(), "/variable/"+probe)
	if !ok || one.URL.RawQuery != "" {
		return secretURLs{}, false
	}
	many, err := c.RetrieveBatchSecretsRequest([]string{full}, true)
	if err != nil {
		return secretURLs{}, false
	}
	batch, ok := strings.CutSuffix(many.URL.String(), "?variable_ids="+url.QueryEscape(full))
	if !ok || many.Header.Get("Accept-Encoding") != "base64" {
		return secretURLs{}, false
	}
	return secretURLs{prefix: prefix + "/variable/", batch: batch + "?variable_ids=", source: c.GetTelemetryHeader()}, true
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
	resp, err := s.send(ctx, ep, tok, u, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// retrieveBatch fetches the latest values of full (fully qualified variable
// ids) from ep with tok in one batch request, values base64-encoded, as
// conjur-api-go's RetrieveBatchSecretsSafe does (or through it, when this
// package cannot build the request as it would), with the same errors.
func (s *session) retrieveBatch(ctx context.Context, ep *endpoint, tok *accessToken, full []string) (map[string][]byte, error) {
	if ep.secrets.batch == "" || tok == nil {
		return s.bind(ctx, ep.api, tok).retrieveBatchSecrets(full)
	}
	resp, err := s.send(ctx, ep, tok, ep.secrets.batch+url.QueryEscape(strings.Join(full, ",")), true)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.Header.Get("Content-Encoding") != "base64" {
		return nil, errNotBase64
	}
	var encoded map[string]string
	if err := json.Unmarshal(data, &encoded); err != nil {
		return nil, err
	}
	vals := make(map[string][]byte, len(encoded))
	for id, v := range encoded {
		if vals[id], err = base64.StdEncoding.DecodeString(v); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

// errNotBase64: a batch answer without base64 values (the server ignored
// Accept-Encoding: base64), which cannot carry a binary value intact.
var errNotBase64 = errors.New("the batch answer's values are not base64-encoded (no Content-Encoding: base64)")

// send sends GET u to ep with tok, and base64 values asked for when batch
// is set; an answer of status 300 or more is returned as conjur-api-go's
// *response.ConjurError, read from the scrubbed body.
func (s *session) send(ctx context.Context, ep *endpoint, tok *accessToken, u string, batch bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if batch {
		req.Header.Add("Accept-Encoding", "base64")
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
	return resp, nil
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
