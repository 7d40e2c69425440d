package conjurdev

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

// testCA issues certificates shaped like Swarm's node certificates:
// ECDSA, O=<cluster>, OU=swarm-manager, CN=<node id>, client and server
// auth.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue writes a node certificate and its key into dir and returns their paths.
func (ca *testCA) issue(t *testing.T, dir, cn string, uris ...string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"cluster-1"}, OrganizationalUnit: []string{"swarm-manager"}},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	for _, u := range uris {
		parsed, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath := filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func TestAuthnCert(t *testing.T) {
	swarmCA, otherCA := newTestCA(t, "swarm-ca"), newTestCA(t, "other-ca")
	policy := "- !policy\n  id: managers\n  body:\n" +
		"  - !host\n    id: node-a\n    annotations:\n      authn-cert/cn: nodeid-a\n" +
		"  - !host\n    id: node-b\n    annotations:\n      authn-cert/nodes/cn: nodeid-b\n" +
		"  - !host unpinned\n  - !host spiffe-wl\n" +
		webservicePolicy("authn-cert/nodes", "!host managers/node-a", "!host managers/node-b", "!host managers/unpinned", "!host managers/spiffe-wl") +
		"- !variable conjur/authn-cert/nodes/ca-cert\n"
	c := newCloudEnv(t, "authn-cert/nodes", policy)
	if err := c.srv.SetSecret("conjur/authn-cert/nodes/ca-cert", []byte(swarmCA.pem)); err != nil {
		t.Fatal(err)
	}
	l, err := c.srv.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	dir := t.TempDir()
	login := func(t *testing.T, ca *testCA, cn, host string) (string, error) {
		t.Helper()
		certFile, keyFile := ca.issue(t, dir, cn, "spiffe://swarm.test/spiffe-wl")
		cfg := c.config()
		cfg.ApplianceURL, cfg.SSLCert = l.URL, string(l.CAPEM)
		cfg.AuthnType, cfg.ServiceID, cfg.CertHostID = "cert", "nodes", host
		cfg.ClientCertFile, cfg.ClientCertKeyFile = certFile, keyFile
		cl, err := conjurapi.NewClientFromCertificate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.GetHttpClient().CloseIdleConnections() })
		return whoami(t, cl)
	}
	tests := []struct{ name, cn, host, reason string }{
		{"ok/pinned-by-general-annotation", "nodeid-a", "managers/node-a", ""},
		{"ok/pinned-by-service-annotation", "nodeid-b", "managers/node-b", ""},
		{"fail/another-node's-host", "nodeid-b", "managers/node-a", "CONJ00049E"},
		{"fail/host-without-cn-annotation", "nodeid-a", "managers/unpinned", "CONJ00057E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			who, err := login(t, swarmCA, tt.cn, tt.host)
			c.expectLogin(t, who, err, "host/"+tt.host, tt.reason)
		})
	}
	t.Run("fail/certificate-of-another-CA", func(t *testing.T) {
		if _, err := login(t, otherCA, "nodeid-a", "managers/node-a"); statusOf(err) != 401 || !strings.Contains(c.reason(), "does not verify against conjur/authn-cert/nodes/ca-cert") {
			t.Fatalf("%v, reason %q", err, c.reason())
		}
	})
	t.Run("fail/no-certificate-over-plain-HTTP", func(t *testing.T) {
		resp, _ := c.do("POST", "/authn-cert/nodes/dev/"+url.PathEscape("host/managers/node-a")+"/authenticate", "", nil)
		if resp.StatusCode != 401 || !strings.Contains(c.reason(), "no client certificate") {
			t.Fatalf("%d, reason %q", resp.StatusCode, c.reason())
		}
	})
	t.Run("ok/spiffe-mode", func(t *testing.T) {
		spiffe := "- !variable conjur/authn-cert/nodes/host-mode\n- !variable conjur/authn-cert/nodes/trust-domain\n- !variable conjur/authn-cert/nodes/identity-path\n"
		if _, err := c.srv.LoadConjurPolicy(ModePost, "root", []byte(spiffe)); err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"host-mode": "spiffe", "trust-domain": "swarm.test", "identity-path": "managers"} {
			if err := c.srv.SetSecret("conjur/authn-cert/nodes/"+k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if who, err := login(t, swarmCA, "anything", ""); err != nil || who != "host/managers/spiffe-wl" {
			t.Fatalf("%q, %v (%s)", who, err, c.reason())
		}
	})
}
