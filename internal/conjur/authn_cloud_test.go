package conjur

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// fakeMetadata is an instance metadata service answering as Azure's IMDS
// and GCP's metadata server do, with a token its issuer signs; fail makes
// it answer 404 (no identity assigned), hang makes it never answer. EC2's
// paths (/latest/) go to imds, when given.
type fakeMetadata struct {
	*httptest.Server
	fail, hang atomic.Bool
	asked      atomic.Value // the last request's URL
}

func newFakeMetadata(t *testing.T, sign func(r *http.Request) (string, error)) *fakeMetadata {
	return newFakeMetadataAt(t, "", sign, nil)
}

// newFakeMetadataAt is newFakeMetadata listening on addr ("" = any
// loopback port), with EC2's IMDS at imds (nil = none).
func newFakeMetadataAt(t *testing.T, addr string, sign func(r *http.Request) (string, error), imds http.Handler) *fakeMetadata {
	t.Helper()
	m := &fakeMetadata{}
	done := make(chan struct{})
	m.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if imds != nil && strings.HasPrefix(r.URL.Path, "/latest/") {
			imds.ServeHTTP(w, r)
			return
		}
		m.asked.Store(r.URL.String())
		if m.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		if m.fail.Load() || (r.Header.Get("Metadata") != "true" && r.Header.Get("Metadata-Flavor") != "Google") {
			http.Error(w, "identity not found", http.StatusNotFound)
			return
		}
		tok, err := sign(r)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/metadata/identity/oauth2/token") {
			_ = json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "token_type": "Bearer"})
			return
		}
		_, _ = w.Write([]byte(tok))
	}))
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		m.Listener.Close()
		m.Listener = ln
	}
	m.Start()
	t.Cleanup(func() { close(done); m.Close() })
	return m
}

const miUser = "/subscriptions/sub-1/resourcegroups/rg-1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/swarm-mi"

// cloudServer is the dev server with authn-azure/prod (host azure/swarm
// pinned to the user-assigned identity swarm-mi), authn-gcp (host
// gcp/swarm pinned to project proj-1) and authn-iam/prod (iamPolicy's
// host, iamIdentities' credentials), all members of apps/readers.
func cloudServer(t *testing.T) (*devServer, *conjurdev.JWTIssuer, *conjurdev.JWTIssuer) {
	t.Helper()
	azure, err := conjurdev.NewJWTIssuer("https://sts.windows.net/tenant-1/")
	if err != nil {
		t.Fatal(err)
	}
	google, err := conjurdev.NewJWTIssuer("https://accounts.google.com")
	if err != nil {
		t.Fatal(err)
	}
	srv := newDevServer(t, conjurdev.Options{Authenticators: []string{"authn", "authn-azure/prod", "authn-gcp", "authn-iam/prod"},
		ProviderKeys: map[string]string{azure.Issuer(): azure.JWKS(), google.Issuer(): google.JWKS()}, IAM: iamIdentities})
	policy := `- !host
  id: azure/swarm
  annotations:
    authn-azure/subscription-id: sub-1
    authn-azure/resource-group: rg-1
    authn-azure/user-assigned-identity: swarm-mi
- !host
  id: gcp/swarm
  annotations:
    authn-gcp/project-id: proj-1
- !webservice conjur/authn-azure/prod
- !variable conjur/authn-azure/prod/provider-uri
- !webservice conjur/authn-gcp
- !permit
  role: !host azure/swarm
  privilege: authenticate
  resource: !webservice conjur/authn-azure/prod
- !permit
  role: !host gcp/swarm
  privilege: authenticate
  resource: !webservice conjur/authn-gcp
- !grant
  role: !group apps/readers
  members: [!host azure/swarm, !host gcp/swarm]
` + iamPolicy
	if _, err := srv.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(policy)); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetSecret("conjur/authn-azure/prod/provider-uri", []byte("https://sts.windows.net/tenant-1")); err != nil {
		t.Fatal(err)
	}
	return srv, azure, google
}

// TestCloudLogin: the plugin logs in with the VM's identity, Azure's and
// GCP's, taking each token from the metadata service at each login (a
// fake one here, on loopback, its address given by Config.MetadataURL),
// reads a secret, and maps every failure to a coded error with its fix;
// a metadata service that never answers ends in NO_CREDENTIAL naming it
// within the Get's deadline, not a TIMEOUT, a hang or an exit.
func TestCloudLogin(t *testing.T) {
	srv, azure, google := cloudServer(t)
	l := srv.listen(t, false)
	tokens := cloudTokens(azure, google)
	for _, kind := range []string{AuthnAzure, AuthnGCP} {
		t.Run(kind, func(t *testing.T) {
			md := newFakeMetadata(t, tokens[kind])
			cloudLoginCases(t, cloudConfig(l.URL, kind, md.URL), md)
		})
	}
	t.Run("auth-refused/host-not-this-identity", func(t *testing.T) {
		md := newFakeMetadata(t, func(*http.Request) (string, error) {
			return azure.Sign(map[string]any{"xms_mirid": strings.Replace(miUser, "swarm-mi", "other-mi", 1), "oid": "oid-1"}, time.Minute)
		})
		c := newClient(t, cloudConfig(l.URL, AuthnAzure, md.URL))
		_, err := c.Get(t.Context(), Ref{ID: varID(1)})
		if CodeOf(err) != errcode.AuthRefused || !strings.Contains(err.Error(), "authn-azure/prod") {
			t.Fatalf("got %v (%s)", err, CodeOf(err))
		}
	})
}

// cloudTokens are the fake metadata service's answers: a token of the
// identity the fixture's hosts are pinned to.
func cloudTokens(azure, google *conjurdev.JWTIssuer) map[string]func(r *http.Request) (string, error) {
	return map[string]func(r *http.Request) (string, error){
		AuthnAzure: func(r *http.Request) (string, error) {
			if r.URL.Query().Get("client_id") != "client-1" {
				return "", errString("the user-assigned identity's client id was not asked for")
			}
			return azure.Sign(map[string]any{"xms_mirid": miUser, "oid": "oid-1"}, time.Minute)
		},
		AuthnGCP: func(r *http.Request) (string, error) {
			return google.Sign(map[string]any{"aud": r.URL.Query().Get("audience"), "sub": "1234",
				"google": map[string]any{"compute_engine": map[string]any{"project_id": "proj-1", "instance_name": "vm-1"}}}, time.Minute)
		},
	}
}

// cloudConfig is the plugin's configuration for kind at the dev server u,
// asking the metadata service at mdURL ("" = the cloud's own address).
func cloudConfig(u, kind, mdURL string) Config {
	cfg := Config{ApplianceURLs: []string{u}, Account: "dev", AllowHTTP: true, AuthnType: kind,
		Login: "host/" + kind + "/swarm", MetadataURL: mdURL, FetchTimeout: 2 * time.Second}
	switch kind {
	case AuthnAzure:
		cfg.ServiceID, cfg.AzureClientID = "prod", "client-1"
	case AuthnIAM:
		cfg.ServiceID, cfg.Login = "prod", iamLogin
	}
	return cfg
}

// cloudLoginCases: a secret is read with the VM's identity; a metadata
// service that refuses or never answers is a coded error, and the next
// login recovers.
func cloudLoginCases(t *testing.T, cfg Config, md *fakeMetadata) {
	kind := cfg.AuthnType
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	cfg.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	c := newClient(t, cfg)

	t.Run("ok/reads-a-secret", func(t *testing.T) {
		if v := mustGet(t, c, varID(1)); string(v.Data.Reveal()) != varValue(1) {
			t.Fatalf("got %q", v.Data.Reveal())
		}
		if st := c.Status(); st.CredentialSource != kind || st.Login != cfg.Login {
			t.Fatalf("status shows %q %q", st.CredentialSource, st.Login)
		}
	})
	t.Run("no-credential/no-identity-assigned", func(t *testing.T) {
		md.fail.Store(true)
		defer md.fail.Store(false)
		clock.Add(int64(9 * time.Minute))
		_, err := c.Get(t.Context(), Ref{ID: varID(2)})
		if CodeOf(err) != errcode.NoCredential || !strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), "identity assigned") {
			t.Fatalf("got %v (%s)", err, CodeOf(err))
		}
	})
	t.Run("no-credential/metadata-never-answers", func(t *testing.T) {
		md.hang.Store(true)
		defer md.hang.Store(false)
		fresh := newClient(t, cfg) // its authentication may outlive the Get: keep it off c
		_, err := fresh.Get(t.Context(), Ref{ID: varID(3)})
		if CodeOf(err) != errcode.NoCredential || !strings.Contains(err.Error(), "gave no identity token") {
			t.Fatalf("got %v (%s), want NO_CREDENTIAL naming the metadata service before the Get's deadline", err, CodeOf(err))
		}
	})
	t.Run("ok/next-login-recovers", func(t *testing.T) {
		clock.Add(int64(9 * time.Minute))
		if v := mustGet(t, c, varID(4)); string(v.Data.Reveal()) != varValue(4) {
			t.Fatalf("got %q", v.Data.Reveal())
		}
	})
}

type errString string

func (e errString) Error() string { return string(e) }

// TestCloudConfigProblems: each cloud mode's settings are checked at once.
func TestCloudConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"refused/azure-without-service-id", Config{AuthnType: AuthnAzure, Login: "host/a"}, "needs CONJUR_SERVICE_ID"},
		{"refused/gcp-with-a-service-id", Config{AuthnType: AuthnGCP, Login: "host/a", ServiceID: "x"}, "authn-gcp has no service id"},
		{"refused/gcp-without-host", Config{AuthnType: AuthnGCP}, "needs CONJUR_AUTHN_LOGIN"},
		{"refused/client-id-outside-azure", Config{AuthnType: AuthnGCP, Login: "host/a", AzureClientID: "c"}, "CONJUR_AUTHN_AZURE_CLIENT_ID is set"},
		{"refused/azure-and-a-credential-file", Config{AuthnType: AuthnAzure, ServiceID: "p", Login: "host/a", CredentialFile: "/f"}, "clear CONJUR_SWARM_CREDENTIAL_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ApplianceURLs, tt.cfg.Account = []string{"https://conjur.example.com"}, "dev"
			if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	ok := Config{ApplianceURLs: []string{"https://conjur.example.com"}, Account: "dev", AuthnType: AuthnGCP, Login: "host/gcp/swarm"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a complete gcp config: %v", err)
	}
}
