package conjur

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// nodeCA issues certificates shaped as Swarm issues node certificates
// (measured on this project's engine): ECDSA P-256, O=<cluster id>,
// OU=swarm-manager, CN=<node id>, client and server auth; the key file is
// PKCS#8 with Swarm's PEM headers (kek-version, raft-dek).
type nodeCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newNodeCA(t *testing.T, name string) *nodeCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &nodeCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// nodeRaftDEK stands for the raft key a manager's key file carries in its
// PEM headers: it must never appear in an error.
const nodeRaftDEK = "c3dhcm0tcmFmdC1kZWstb2YtdGhlLXRlc3Q="

// issue replaces dir's swarm-node.crt and swarm-node.key (as Swarm does when
// it rotates: a new file renamed over the old) with a certificate for
// nodeID valid until notAfter.
func (ca *nodeCA) issue(t *testing.T, dir, nodeID string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:   pkix.Name{CommonName: nodeID, Organization: []string{"0aj9w4acph03452n6rhjd4vhy"}, OrganizationalUnit: []string{"swarm-manager"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"kek-version": "0", "raft-dek": nodeRaftDEK}, Bytes: kb})
	replaceFile(t, filepath.Join(dir, "swarm-node.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	replaceFile(t, filepath.Join(dir, "swarm-node.key"), keyPEM)
}

func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const (
	certService = "swarm"
	nodeA       = "6f9nelwx7v4b6cmbomg8m05el" // a node id as Swarm writes it
	nodeHost    = "host/swarm/managers/" + nodeA
)

// certServer is the dev server with authn-cert/swarm trusting ca, host
// swarm/managers/<nodeA> pinned to CN nodeA (and a reader of apps/*),
// served over TLS.
func certServer(t *testing.T, ca *nodeCA) (*devServer, *conjurdev.Listener) {
	t.Helper()
	srv := newDevServer(t, conjurdev.Options{Authenticators: []string{"authn", "authn-cert/" + certService}})
	policy := "- !host\n  id: swarm/managers/" + nodeA + "\n  annotations:\n    authn-cert/cn: " + nodeA + "\n" +
		"- !host swarm/managers/unpinned\n" +
		"- !webservice conjur/authn-cert/" + certService + "\n- !variable conjur/authn-cert/" + certService + "/ca-cert\n" +
		"- !permit\n  role: !host swarm/managers/" + nodeA + "\n  privilege: authenticate\n  resource: !webservice conjur/authn-cert/" + certService + "\n" +
		"- !permit\n  role: !host swarm/managers/unpinned\n  privilege: authenticate\n  resource: !webservice conjur/authn-cert/" + certService + "\n" +
		"- !grant\n  role: !group apps/readers\n  member: !host swarm/managers/" + nodeA + "\n"
	if _, err := srv.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(policy)); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetSecret("conjur/authn-cert/"+certService+"/ca-cert", ca.pem); err != nil {
		t.Fatal(err)
	}
	return srv, srv.listen(t, true)
}

// certConfigFor is a Config of the authn-cert mode at l, with the node
// files in dir and a clock the test moves.
func certConfigFor(l *conjurdev.Listener, dir, login string, clock *atomic.Int64) Config {
	return Config{
		ApplianceURLs:  []string{l.URL},
		Account:        "dev",
		Login:          login,
		CACertPEM:      l.CAPEM,
		AuthnType:      AuthnCert,
		ServiceID:      certService,
		ClientCertFile: filepath.Join(dir, "swarm-node.crt"),
		ClientKeyFile:  filepath.Join(dir, "swarm-node.key"),
		FetchTimeout:   10 * time.Second,
		Now:            func() time.Time { return time.Unix(0, clock.Load()) },
	}
}

// TestCertLoginFollowsRotation: the plugin logs in with the node
// certificate over mTLS and reads a secret; each later authentication reads
// the files again, so a certificate Swarm renames over the old one is the
// one used next, without a restart (a certificate of a CA Conjur does not
// trust is refused, and the next good one is accepted again).
func TestCertLoginFollowsRotation(t *testing.T) {
	swarmCA := newNodeCA(t, "swarm-ca")
	srv, l := certServer(t, swarmCA)
	dir := t.TempDir()
	swarmCA.issue(t, dir, nodeA, time.Now().Add(2*time.Hour))
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	c := newClient(t, certConfigFor(l, dir, nodeHost, &clock))

	if v := mustGet(t, c, varID(1)); string(v.Data.Reveal()) != varValue(1) {
		t.Fatalf("got %q", v.Data.Reveal())
	}
	if st := c.Status(); st.CredentialSource != "cert" || st.Login != nodeHost {
		t.Fatalf("status shows source %q login %q, want cert and %s", st.CredentialSource, st.Login, nodeHost)
	}
	authns := srv.Count(conjurdev.EpAuthnCloud)
	reauth := func() { clock.Add(int64(9 * time.Minute)) } // past the access token's 8 minutes

	newNodeCA(t, "another-ca").issue(t, dir, nodeA, time.Now().Add(2*time.Hour)) // not Conjur's CA
	reauth()
	if _, err := c.Get(t.Context(), Ref{ID: varID(2)}); CodeOf(err) != errcode.AuthRefused || !strings.Contains(err.Error(), "docker swarm ca") {
		t.Fatalf("with the other CA's certificate: %v, want AUTH_REFUSED naming the swarm CA", err)
	}
	swarmCA.issue(t, dir, nodeA, time.Now().Add(3*time.Hour)) // Swarm's rotation
	reauth()
	if v := mustGet(t, c, varID(3)); string(v.Data.Reveal()) != varValue(3) {
		t.Fatalf("after rotation got %q", v.Data.Reveal())
	}
	if n := srv.Count(conjurdev.EpAuthnCloud) - authns; n < 2 {
		t.Fatalf("%d authentications after the first, want one per certificate (2)", n)
	}
}

// TestCertLoginFailures: each way the node certificate can be unusable is
// a coded error that says what to do, and none quotes the key file.
func TestCertLoginFailures(t *testing.T) {
	swarmCA := newNodeCA(t, "swarm-ca")
	_, l := certServer(t, swarmCA)
	tests := []struct {
		name  string
		login string
		setup func(t *testing.T, dir string)
		code  errcode.Code
		fix   string
	}{
		{"no-credential/no-certificate-files", nodeHost, func(*testing.T, string) {}, errcode.NoCredential, "swarm.source=/var/lib/docker/swarm/certificates"},
		{"rejected/key-encrypted-by-autolock", nodeHost, func(t *testing.T, dir string) {
			swarmCA.issue(t, dir, nodeA, time.Now().Add(time.Hour))
			enc := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("ciphertext"),
				Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF", "raft-dek": nodeRaftDEK}})
			replaceFile(t, filepath.Join(dir, "swarm-node.key"), enc)
		}, errcode.CredentialRejected, "--autolock=false"},
		{"rejected/key-of-another-certificate", nodeHost, func(t *testing.T, dir string) {
			other := t.TempDir()
			swarmCA.issue(t, other, nodeA, time.Now().Add(time.Hour))
			swarmCA.issue(t, dir, nodeA, time.Now().Add(time.Hour))
			data, _ := os.ReadFile(filepath.Join(other, "swarm-node.key"))
			replaceFile(t, filepath.Join(dir, "swarm-node.key"), data)
		}, errcode.CredentialRejected, "private key does not match public key"},
		{"rejected/certificate-expired", nodeHost, func(t *testing.T, dir string) {
			swarmCA.issue(t, dir, nodeA, time.Now().Add(-time.Minute))
		}, errcode.CredentialRejected, "check the node's clock"},
		{"refused/host-not-pinned-to-this-node", "host/swarm/managers/unpinned", func(t *testing.T, dir string) {
			swarmCA.issue(t, dir, nodeA, time.Now().Add(time.Hour))
		}, errcode.AuthRefused, "authn-cert/cn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			var clock atomic.Int64
			clock.Store(time.Now().UnixNano())
			c := newClient(t, certConfigFor(l, dir, tt.login, &clock))
			_, err := c.Get(t.Context(), Ref{ID: varID(1)})
			if CodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.fix) {
				t.Fatalf("got %v (%s), want %s naming %q", err, CodeOf(err), tt.code, tt.fix)
			}
			if strings.Contains(err.Error(), nodeRaftDEK) || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("the error quotes the key file: %v", err)
			}
		})
	}
}

// TestCertConfigProblems: the authn-cert mode's settings are checked at
// once, each problem naming the setting.
func TestCertConfigProblems(t *testing.T) {
	base := Config{ApplianceURLs: []string{"https://conjur.example.com"}, Account: "dev", Login: nodeHost,
		AuthnType: AuthnCert, ServiceID: certService, ClientCertFile: "/c.crt", ClientKeyFile: "/c.key"}
	if err := base.Validate(); err != nil {
		t.Fatalf("a complete cert config: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"refused/unknown-type", func(c *Config) { c.AuthnType = "kerberos" }, "CONJUR_AUTHN_TYPE is \"kerberos\""},
		{"refused/no-service-id", func(c *Config) { c.ServiceID = "" }, "needs CONJUR_SERVICE_ID"},
		{"refused/no-host", func(c *Config) { c.Login = "" }, "needs CONJUR_AUTHN_LOGIN"},
		{"refused/no-key-file", func(c *Config) { c.ClientKeyFile = "" }, "CONJUR_AUTHN_CERT_KEY_FILE"},
		{"refused/an-api-key-too", func(c *Config) { c.APIKey = "k" }, "clear CONJUR_AUTHN_API_KEY"},
		{"refused/plain-http", func(c *Config) { c.ApplianceURLs = []string{"http://conjur"}; c.AllowHTTP = true }, "use https"},
		{"refused/cert-files-without-the-type", func(c *Config) { c.AuthnType = ""; c.Login = "host/x" }, "without CONJUR_AUTHN_TYPE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
