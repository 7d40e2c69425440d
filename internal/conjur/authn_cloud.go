package conjur

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"

	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// CONJUR_AUTHN_TYPE's values for the clouds' workload identities: the
// plugin asks the instance metadata service for a token of the VM's
// identity at each login and hands it to Conjur's authn-azure/<ServiceID>
// or authn-gcp, as the host CONJUR_AUTHN_LOGIN names.
const (
	AuthnAzure = "azure"
	AuthnGCP   = "gcp"
)

// The metadata services, at the addresses conjur-api-go calls them.
const (
	azureMetadata = "http://169.254.169.254"
	gcpMetadata   = "http://metadata.google.internal"
	maxMetadata   = 64 << 10 // a token answer is a few KiB
)

// metadataBase is where the metadata service of the mode is asked:
// cfg.MetadataURL (tests) or the cloud's own address.
func (c Config) metadataBase() string {
	if c.MetadataURL != "" {
		return strings.TrimRight(c.MetadataURL, "/")
	}
	switch c.AuthnType {
	case AuthnGCP:
		return gcpMetadata
	case AuthnIAM:
		return imdsBase
	}
	return azureMetadata
}

// metadataToken asks the instance metadata service for a token of this
// VM's identity, as conjur-api-go would, but bounded by ctx and the fetch
// timeout, without a proxy, and with every failure a coded error (the
// library's own fetch has no deadline, and its GCP path ends the process
// with a Fatal log when the metadata service cannot be reached).
func (s *session) metadataToken(ctx context.Context) (redact.String, error) {
	base, what := s.cfg.metadataBase(), "Azure instance metadata service"
	var u string
	hdr := http.Header{}
	switch s.cfg.AuthnType {
	case AuthnGCP:
		what = "GCP metadata server"
		q := url.Values{"audience": {"conjur/" + s.cfg.Account + "/host/" + strings.TrimPrefix(s.cfg.Login, "host/")}, "format": {"full"}}
		u = base + "/computeMetadata/v1/instance/service-accounts/default/identity?" + q.Encode()
		hdr.Set("Metadata-Flavor", "Google")
	default:
		q := url.Values{"api-version": {"2018-02-01"}, "resource": {"https://management.azure.com/"}}
		if s.cfg.AzureClientID != "" {
			q.Set("client_id", s.cfg.AzureClientID)
		}
		u = base + "/metadata/identity/oauth2/token?" + q.Encode()
		hdr.Set("Metadata", "true")
	}
	// Half the fetch timeout: a metadata service that never answers ends
	// in NO_CREDENTIAL naming it, not in the Get's TIMEOUT.
	body, err := metadataRequest(ctx, http.MethodGet, u, hdr, s.cfg.FetchTimeout/2)
	if err != nil {
		return "", &Error{Code: errcode.NoCredential, Cause: err,
			Msg: fmt.Sprintf("the %s at %s gave no identity token (%s): run the manager on a %s VM with an identity assigned (%s)", what, base, netText(err.Error()), cloudName(s.cfg.AuthnType), identityHint(s.cfg.AuthnType))}
	}
	tok := strings.TrimSpace(string(body))
	if s.cfg.AuthnType == AuthnAzure {
		var r struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(body, &r) != nil {
			r.AccessToken = ""
		}
		tok = r.AccessToken
	}
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", &Error{Code: errcode.NoCredential,
			Msg: fmt.Sprintf("the %s at %s answered without a usable identity token: check that the VM has an identity assigned (%s)", what, base, identityHint(s.cfg.AuthnType))}
	}
	return redact.String(tok), nil
}

// metadataRequest is one request to the metadata service (a GET, or
// IMDSv2's token PUT): no proxy, no redirect, no body, bounded in time and
// size; a non-200 answer is an error naming its status.
func metadataRequest(ctx context.Context, method, u string, hdr http.Header, timeout time.Duration) ([]byte, error) {
	hc := &http.Client{
		Transport:     &http.Transport{DialContext: (&net.Dialer{Timeout: timeout}).DialContext, DisableKeepAlives: true},
		Timeout:       timeout,
		CheckRedirect: noRedirect,
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header = hdr
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxMetadata {
		return nil, fmt.Errorf("an answer larger than %d bytes", maxMetadata)
	}
	return body, nil
}

func cloudName(authnType string) string {
	if authnType == AuthnGCP {
		return "Google Compute Engine"
	}
	return "Azure"
}

func identityHint(authnType string) string {
	if authnType == AuthnGCP {
		return "a service account on the instance"
	}
	return "a system-assigned managed identity, or a user-assigned one named by CONJUR_AUTHN_AZURE_CLIENT_ID"
}

// cloudAuthenticate logs in to ep's authn-azure/<ServiceID> or authn-gcp
// with a metadata token fetched now, through conjur-api-go's constructors
// given that token (so the library never fetches one itself).
func (s *session) cloudAuthenticate(ctx context.Context, ep *endpoint) ([]byte, error) {
	tok, err := s.metadataToken(ctx)
	if err != nil {
		return nil, err
	}
	conf := s.cfg.apiConfig(ep.url)
	conf.AuthnType, conf.ServiceID, conf.JWTHostID = s.cfg.AuthnType, s.cfg.ServiceID, s.cfg.Login
	conf.JWTContent, conf.AzureClientID = tok.Reveal(), s.cfg.AzureClientID
	hc := s.bindHTTP(ctx)
	tele := apiTelemetry()
	if s.cfg.AuthnType == AuthnGCP {
		c, err := conjurapi.NewClientFromGCPCredentials(conf, "-", tele) // "-": never asked, the token is given
		if err != nil {
			return nil, settingsRefused("authn-gcp", err)
		}
		c.SetHttpClient(hc)
		return c.GCPAuthenticate(tok.Reveal())
	}
	c, err := conjurapi.NewClientFromAzureCredentials(conf, tele)
	if err != nil {
		return nil, settingsRefused("authn-azure", err)
	}
	c.SetHttpClient(hc)
	return c.AzureAuthenticate(tok.Reveal())
}

// settingsRefused is conjur-api-go's refusal, at construction, of the
// client settings of authenticator (authn-azure, authn-gcp, authn-iam).
func settingsRefused(authenticator string, err error) *Error {
	return &Error{Code: errcode.CredentialRejected, Cause: err,
		Msg: "conjur-api-go refused the " + authenticator + " settings: check CONJUR_SERVICE_ID and CONJUR_AUTHN_LOGIN"}
}

// bindHTTP is the HTTP client of one request to Conjur under ctx.
func (s *session) bindHTTP(ctx context.Context) *http.Client {
	return &http.Client{
		Transport:     ctxTransport{ctx: ctx, rt: s.transport.Load(), proxy: s.cfg.Proxy},
		CheckRedirect: noRedirect,
	}
}
