package conjur

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// AuthnCert is CONJUR_AUTHN_TYPE's value for authn-cert: the plugin logs in
// with a client certificate (the swarm node's own, on the plugin's swarm
// mount) over mutual TLS, as the host CONJUR_AUTHN_LOGIN names.
const AuthnCert = "cert"

// authnTypes are the values CONJUR_AUTHN_TYPE accepts ("" = API key or JWT).
var authnTypes = []string{"", AuthnCert, AuthnIAM, AuthnAzure, AuthnGCP}

// authnTypeProblems lists what CONJUR_AUTHN_TYPE's mode needs and cannot
// have: the plugin's own identity (cert, iam, azure, gcp) needs a host and no
// other credential.
func (c Config) authnTypeProblems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	mode := "CONJUR_AUTHN_TYPE=" + c.AuthnType
	switch {
	case c.AuthnType == AuthnGCP && c.ServiceID != "":
		bad("CONJUR_SERVICE_ID is set but authn-gcp has no service id: clear it")
	case c.AuthnType != AuthnGCP && c.ServiceID == "":
		bad("%s needs CONJUR_SERVICE_ID: give the authenticator's service id (the part after conjur/authn-%s/ in Conjur's webservice), e.g. swarm", mode, c.AuthnType)
	case strings.ContainsAny(c.ServiceID, "/ \t\n"):
		bad("CONJUR_SERVICE_ID %q contains '/' or whitespace: give the service id only (the part after conjur/authn-%s/)", c.ServiceID, c.AuthnType)
	}
	if c.Login == "" {
		bad("%s needs CONJUR_AUTHN_LOGIN: give the Conjur host the plugin logs in as, e.g. host/swarm/managers/<node id>", mode)
	}
	if c.AuthnType == AuthnCert && (c.ClientCertFile == "" || c.ClientKeyFile == "") {
		bad("CONJUR_AUTHN_TYPE=cert needs CONJUR_AUTHN_CERT_FILE and CONJUR_AUTHN_CERT_KEY_FILE: give the node certificate and key inside the plugin, e.g. /etc/conjur-swarm/swarm/swarm-node.crt and swarm-node.key (mount swarm)")
	}
	if c.AuthnType != AuthnAzure && c.AzureClientID != "" {
		bad("CONJUR_AUTHN_AZURE_CLIENT_ID is set but CONJUR_AUTHN_TYPE is not azure: clear it")
	}
	for _, s := range []struct{ name, value string }{
		{"CONJUR_AUTHN_API_KEY", c.APIKey.Reveal()}, {"CONJUR_SWARM_CREDENTIAL_FILE", c.CredentialFile},
		{"JWT_TOKEN_PATH", c.JWTTokenPath}, {"CONJUR_AUTHN_JWT_SERVICE_ID", c.JWTServiceID}, {"CONJUR_AUTHN_JWT_HOST_ID", c.JWTHostID},
	} {
		if s.value != "" {
			bad("%s is set but %s logs in with %s: clear %s", s.name, mode, ownIdentity(c.AuthnType), s.name)
		}
	}
	if c.Signer != nil {
		bad("CONJUR_SWARM_IDENTITY=per-request and %s are both set: keep one", mode)
	}
	for _, u := range c.ApplianceURLs {
		if c.AuthnType != AuthnCert {
			continue
		}
		if IsCloudURL(u) {
			bad("CONJUR_APPLIANCE_URL %q is Conjur Cloud, which has no authn-cert: use another authenticator", u)
		} else if !strings.HasPrefix(strings.ToLower(u), "https://") {
			bad("CONJUR_APPLIANCE_URL %q is not https: authn-cert presents the certificate in TLS; use https", u)
		}
	}
	return errs
}

func ownIdentity(authnType string) string {
	switch authnType {
	case AuthnCert:
		return "the node certificate"
	case AuthnIAM:
		return "the AWS identity (the instance role, or AWS_ACCESS_KEY_ID's credentials)"
	}
	return "the VM's identity from the metadata service"
}

// nodeCert reads the client certificate and key now (Swarm replaces them
// when it rotates the node certificate, so every authentication reads
// them again). Failures are coded errors naming the fix; none quotes the
// files' contents (the key file of a manager also carries Swarm's raft key
// in its PEM headers).
func (s *session) nodeCert() (tls.Certificate, error) {
	certFile, keyFile := s.cfg.ClientCertFile, s.cfg.ClientKeyFile
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, certFileError(certFile, "certificate", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, certFileError(keyFile, "key", err)
	}
	if encryptedKey(keyPEM) {
		return tls.Certificate{}, &Error{Code: errcode.CredentialRejected,
			Msg: fmt.Sprintf("the node key %s is encrypted at rest (the swarm is autolocked: docker swarm update --autolock=true), so authn-cert cannot use it: turn autolock off (docker swarm update --autolock=false) or log in with another authenticator", keyFile)}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, &Error{Code: errcode.CredentialRejected,
			Msg: fmt.Sprintf("the client certificate %s and key %s are not a usable pair (%s): point CONJUR_AUTHN_CERT_FILE and CONJUR_AUTHN_CERT_KEY_FILE at the node's swarm-node.crt and swarm-node.key", certFile, keyFile, pairProblem(err))}
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return tls.Certificate{}, &Error{Code: errcode.CredentialRejected, Cause: err,
			Msg: fmt.Sprintf("the client certificate %s cannot be parsed: point CONJUR_AUTHN_CERT_FILE at the node's swarm-node.crt", certFile)}
	}
	if now := s.now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return tls.Certificate{}, &Error{Code: errcode.CredentialRejected,
			Msg: fmt.Sprintf("the client certificate %s (CN %s) is valid from %s to %s, not now (%s): Swarm renews a node certificate while the node is in the swarm; check the node's clock and `docker node inspect self`, or rotate it with `docker swarm ca --rotate`",
				certFile, leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	pair.Leaf = leaf
	return pair, nil
}

func certFileError(path, what string, err error) *Error {
	if errors.Is(err, os.ErrNotExist) {
		return &Error{Code: errcode.NoCredential, Cause: err,
			Msg: fmt.Sprintf("the client %s %s does not exist: mount the node's swarm certificate directory (docker plugin set PLUGIN swarm.source=/var/lib/docker/swarm/certificates) and check the node is in a swarm", what, path)}
	}
	return &Error{Code: errcode.NoCredential, Cause: err,
		Msg: fmt.Sprintf("the client %s %s cannot be read: the plugin runs as root; check the file is a regular file on the swarm mount", what, path)}
}

// encryptedKey reports whether keyPEM's key is encrypted (an autolocked
// swarm keeps its node key so): legacy PEM encryption or PKCS#8's.
func encryptedKey(keyPEM []byte) bool {
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return false
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return true
		}
	}
}

// pairProblem names what tls.X509KeyPair refused without quoting the files.
func pairProblem(err error) string {
	msg := err.Error()
	for _, known := range []string{"failed to find any PEM data in certificate input", "failed to find any PEM data in key input",
		"private key does not match public key", "failed to parse private key", "found a certificate rather than a key in the PEM for the private key"} {
		if strings.Contains(msg, known) {
			return known
		}
	}
	return "unusable PEM"
}

// certAuthenticate logs in to ep's authn-cert/<ServiceID> as cfg.Login,
// presenting the node certificate read now. The request goes on a
// connection of its own (no keep-alive), so the certificate in the TLS
// handshake is always the one just read; the secrets requests that follow
// carry the access token and no certificate.
func (s *session) certAuthenticate(ctx context.Context, ep *endpoint) ([]byte, error) {
	pair, err := s.nodeCert()
	if err != nil {
		return nil, err
	}
	tr := s.transport.Load().Clone()
	tr.TLSClientConfig = tr.TLSClientConfig.Clone()
	tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	tr.DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: ctxTransport{ctx: ctx, rt: tr, proxy: s.cfg.Proxy}, CheckRedirect: noRedirect}
	return certLogin(s.certConfig(ep.url), hc, s.cfg.Login)
}

// certConfig is conjurapi's configuration of an authn-cert login at u. The
// library reads the files only to check them at construction; the
// certificate presented is the one this package read.
func (s *session) certConfig(u string) conjurapi.Config {
	c := s.cfg.apiConfig(u)
	c.AuthnType, c.ServiceID, c.CertHostID = AuthnCert, s.cfg.ServiceID, s.cfg.Login
	c.ClientCertFile, c.ClientCertKeyFile = s.cfg.ClientCertFile, s.cfg.ClientKeyFile
	return c
}

// certLogin builds conjurapi's authn-cert client for conf and logs in as
// hostID. hc presents the certificate; the client's own transport is
// replaced by it (the CA, proxy, bounds and deadline of this package).
func certLogin(conf conjurapi.Config, hc *http.Client, hostID string) ([]byte, error) {
	c, err := conjurapi.NewClientFromCertificate(conf, apiTelemetry())
	if err != nil {
		return nil, &Error{Code: errcode.CredentialRejected, Cause: err,
			Msg: "conjur-api-go refused the authn-cert settings: check that CONJUR_APPLIANCE_URL is https and not Conjur Cloud, CONJUR_SERVICE_ID, and the certificate files"}
	}
	c.SetHttpClient(hc)
	return c.CertAuthenticate(hostID)
}
