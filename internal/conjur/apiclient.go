package conjur

import (
	"net/http"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
)

// apiClient is one conjurapi client held behind closures, so that no type
// of this package names *conjurapi.Client. The plugin links text/template
// (bundle templates), whose reflection (Value.MethodByName) makes the Go
// linker keep every exported method of every type an interface can reach;
// endpoint is such a type (through session and Client), and
// *conjurapi.Client's IAM methods pull in the whole AWS SDK (2.7 MB of
// the stripped binary: docs/architecture.md, "Code shaped by a measurement").
// Closures carry no type descriptor, so the client's methods are kept only
// where this package calls them.
type apiClient struct {
	// bind returns the operations of a copy of the client whose requests go
	// through hc and, when raw is not nil, carry that access token.
	bind func(hc *http.Client, raw []byte) apiOps
	// withToken returns a client whose token is raw, already parsed, or nil
	// when conjurapi cannot parse it (see the package function withToken).
	withToken func(raw []byte) *apiClient
}

// apiOps are the conjurapi calls this package makes, on one per-request
// copy of a client.
type apiOps struct {
	authenticate            func(authn.LoginPair) ([]byte, error)
	jwtAuthenticate         func(jwt, hostID string) ([]byte, error)
	retrieveBatchSecrets    func(ids []string) (map[string][]byte, error)
	retrieveSecret          func(id string) ([]byte, error)
	retrieveSecretAtVersion func(id string, version int) ([]byte, error)
	resource                func(id string) (map[string]any, error)
	resources               func(*conjurapi.ResourceFilter) ([]map[string]any, error)
	needsTokenRefresh       func() bool
	whoAmI                  func() ([]byte, error)
}

func newAPIClient(c *conjurapi.Client) *apiClient {
	return &apiClient{
		bind: func(hc *http.Client, raw []byte) apiOps {
			cp := *c
			cp.SetHttpClient(hc)
			if raw != nil {
				cp.SetAuthenticator(staticToken(raw))
			}
			return opsOf(&cp)
		},
		withToken: func(raw []byte) *apiClient {
			cp := *c
			cp.SetAuthenticator(staticToken(raw))
			if err := cp.RefreshToken(); err != nil {
				return nil
			}
			return newAPIClient(&cp)
		},
	}
}

func opsOf(c *conjurapi.Client) apiOps {
	return apiOps{
		authenticate:            c.Authenticate,
		jwtAuthenticate:         c.JWTAuthenticate,
		retrieveBatchSecrets:    c.RetrieveBatchSecretsSafe,
		retrieveSecret:          c.RetrieveSecret,
		retrieveSecretAtVersion: c.RetrieveSecretWithVersion,
		resource:                c.Resource,
		resources:               c.Resources,
		needsTokenRefresh:       c.NeedsTokenRefresh,
		whoAmI:                  c.WhoAmI,
	}
}
