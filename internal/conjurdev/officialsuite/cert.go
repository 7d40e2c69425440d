package main

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
	"time"
)

// certEnv is what the suite's TestAuthnCert reads: TEST_CERT=true, a CA
// (TEST_CERT_CA_CERT, loaded into the webservice's ca-cert variable) and a
// client certificate it issued, with its key, in files
// (CONJUR_AUTHN_CERT_FILE, CONJUR_AUTHN_CERT_KEY_FILE). One certificate
// serves both of its subtests: CN=vm-01 for the host pinned by the
// authn-cert/cn annotation, and the URI spiffe://conjur.test/vm-spiffe for
// SPIFFE mode (trust domain conjur.test, identity path
// data/test/cert-apps). The test reaches the dev server at tlsURL, which
// it reads from CONJUR_CERT_APPLIANCE_URL, trusting caPEM
// (CONJUR_CERT_SSL_CERTIFICATE): authn-cert needs the client's
// certificate on the TLS connection itself, which the X-Forwarded-For
// proxy in front of the other tests would end.
func certEnv(dir, tlsURL string, serverCA []byte) ([]string, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "officialsuite client CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	spiffe, _ := url.Parse("spiffe://conjur.test/vm-spiffe")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vm-01"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{spiffe},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, "vm-01.crt"), filepath.Join(dir, "vm-01.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	return []string{
		"TEST_CERT=true", "TEST_CERT_CA_CERT=" + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		"CONJUR_AUTHN_CERT_FILE=" + certFile, "CONJUR_AUTHN_CERT_KEY_FILE=" + keyFile,
		"CONJUR_CERT_APPLIANCE_URL=" + tlsURL, "CONJUR_CERT_SSL_CERTIFICATE=" + string(serverCA),
	}, nil
}
