package conjur

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/response"
)

// The secret fetches are sent by this package rather than through
// conjurapi's RetrieveSecret and RetrieveBatchSecretsSafe, which on every
// call build the URL anew (parsing it and matching the host against Conjur
// Cloud's pattern), encode the token into the Authorization header, make an
// HTTP client and copy the request headers to log them. The requests are the
// same: the URL prefixes are taken once from conjurapi's own request
// builders (directURLs), the headers are conjurapi's, answers of 300 and
// above become conjurapi's errors through its response package, and
// TestDirectRequestsMatchConjurapi holds them to conjurapi's.

// directURLs are the URL prefixes of an endpoint's secret requests, as
// conjurapi builds them: variables is followed by the escaped variable
// path, batch by "?variable_ids=".
type directURLs struct {
	variables string // ".../secrets/<account>"
	batch     string // ".../secrets"
	telemetry string // the telemetry header conjurapi sends
}

// newDirectURLs asks api for the requests of a probe variable and keeps what
// precedes it.
func newDirectURLs(api *conjurapi.Client, account string) (directURLs, error) {
	const probe = "probe"
	one, err := api.RetrieveSecretRequest(account + ":variable:" + probe)
	if err != nil {
		return directURLs{}, err
	}
	vars, ok := strings.CutSuffix(one.URL.String(), "/variable/"+probe)
	if !ok {
		return directURLs{}, fmt.Errorf("unexpected conjurapi variable URL %s", one.URL.Redacted())
	}
	batch, err := api.RetrieveBatchSecretsRequest([]string{probe}, true)
	if err != nil {
		return directURLs{}, err
	}
	b, _, ok := strings.Cut(batch.URL.String(), "?variable_ids=")
	if !ok {
		return directURLs{}, fmt.Errorf("unexpected conjurapi batch URL %s", batch.URL.Redacted())
	}
	return directURLs{variables: vars, batch: b, telemetry: api.GetTelemetryHeader()}, nil
}

// variableURL is conjurapi's URL for one variable (version 0 = latest).
func (d directURLs) variableURL(id string, version int) string {
	u := d.variables + "/" + strings.TrimPrefix(path.Join("variable", url.PathEscape(id)), "/")
	if version > 0 {
		u += "?version=" + strconv.Itoa(version)
	}
	return u
}

// batchURL is conjurapi's URL for a batch of fully qualified variable ids.
func (d directURLs) batchURL(full []string) string {
	return d.batch + "?variable_ids=" + url.QueryEscape(strings.Join(full, ","))
}

// authorization is the Authorization header conjurapi sends with raw.
func authorization(raw []byte) string {
	return `Token token="` + base64.StdEncoding.EncodeToString(raw) + `"`
}

// send makes one GET with tok to u under ctx and returns the body of an
// answer below 300, or conjurapi's error for any other.
func (c *Client) send(ctx context.Context, ep *endpoint, tok *accessToken, u string, base64Batch bool) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", tok.authz)
	req.Header.Set(conjurapi.ConjurSourceHeader, ep.urls.telemetry)
	if base64Batch {
		req.Header.Set("Accept-Encoding", "base64")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 300 {
		_, err := response.DataResponse(resp)
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return body, resp.Header, nil
}

// retrieveSecret is conjurapi's RetrieveSecret (version 0) or
// RetrieveSecretWithVersion.
func (c *Client) retrieveSecret(ctx context.Context, ep *endpoint, tok *accessToken, id string, version int) ([]byte, error) {
	body, _, err := c.send(ctx, ep, tok, ep.urls.variableURL(id, version), false)
	return body, err
}

// retrieveBatch is conjurapi's RetrieveBatchSecretsSafe for fully qualified
// ids: the values come base64-encoded and are decoded.
func (c *Client) retrieveBatch(ctx context.Context, ep *endpoint, tok *accessToken, full []string) (map[string][]byte, error) {
	body, h, err := c.send(ctx, ep, tok, ep.urls.batchURL(full), true)
	if err != nil {
		return nil, err
	}
	if h.Get("Content-Encoding") != "base64" {
		// conjurapi's check, in this project's words: a Conjur too old
		// for binary-safe batches ignores Accept-Encoding: base64.
		return nil, errors.New("the batch answer is not base64-encoded (this Conjur ignores Accept-Encoding: base64)")
	}
	encoded := map[string]string{}
	if err := json.Unmarshal(body, &encoded); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(encoded))
	for id, v := range encoded {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, err
		}
		out[id] = b
	}
	return out, nil
}
