package conjur

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// The explicit proxy (CONJUR_SWARM_PROXY). Ambient HTTPS_PROXY and friends
// are never read: only this setting makes the plugin use a proxy, and only
// the Conjur transport uses it. It is net/http's own proxy support: every
// connection to Conjur is a CONNECT tunnel through the proxy, inside which
// TLS runs end to end and is verified against Conjur's CA as without a
// proxy: the proxy sees the target host and port, and ciphertext. An
// https:// proxy is reached over TLS too, verified against the same CA
// (CONJUR_SSL_CERTIFICATE / CONJUR_CERT_FILE) and the system's.
//
// The proxy's user:password is never a setting (settings show in docker
// plugin inspect): it is read from CONJUR_SWARM_PROXY_CREDENTIAL_FILE (on
// the identity mount) for each new tunnel and sent as Basic
// Proxy-Authorization, in clear text to an http:// proxy (New warns), inside
// TLS to an https:// one. No error, log line or status text carries it.

// checkProxy validates CONJUR_SWARM_PROXY: http:// or https://HOST:PORT,
// nothing else.
func checkProxy(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("CONJUR_SWARM_PROXY %q: give the proxy as http://HOST:PORT or https://HOST:PORT", redactUserinfo(raw))
	}
	if u.User != nil {
		return fmt.Errorf("CONJUR_SWARM_PROXY %q carries a user or password: remove it and put user:password in the file named by CONJUR_SWARM_PROXY_CREDENTIAL_FILE (settings show in docker plugin inspect)", redactUserinfo(raw))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("CONJUR_SWARM_PROXY %q: give scheme, host and port only (http://HOST:PORT)", raw)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return fmt.Errorf("CONJUR_SWARM_PROXY %q: give the port too (http://HOST:PORT, e.g. http://proxy.example.com:3128)", raw)
	}
	return nil
}

// redactUserinfo hides anything between "://" and "@" in a URL-ish text.
func redactUserinfo(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "://[REDACTED]@" + rest[at+1:]
	}
	return raw
}

// warnClearProxy warns when the proxy credential would go to the proxy in
// clear text.
func warnClearProxy(cfg Config, log *zap.Logger) {
	if cfg.ProxyCredentialFile != "" && strings.HasPrefix(cfg.Proxy, "http://") {
		log.Warn("the proxy credential goes to the proxy in clear text (Basic over http://): whoever sees the network between this node and the proxy can read it; give CONJUR_SWARM_PROXY as https://HOST:PORT if the proxy speaks TLS",
			zap.String("proxy", cfg.Proxy), zap.String("credential_file", cfg.ProxyCredentialFile))
	}
}

// ProxyError is a failure of the proxy rather than of Conjur: the proxy
// could not be reached, or it answered CONNECT with Status.
type ProxyError struct {
	Proxy  string // host:port
	Status int    // the CONNECT answer's status; 0 when the proxy was not reached or gave no answer
	Text   string // what went wrong, without credentials, escaped (netText)
	Cause  error
}

func (e *ProxyError) Error() string { return e.Text }
func (e *ProxyError) Unwrap() error { return e.Cause }

// advice says what to do about e, naming the settings.
func (e *ProxyError) advice() string {
	switch {
	case e.Status == http.StatusProxyAuthRequired:
		return fmt.Sprintf("the HTTP proxy %s (CONJUR_SWARM_PROXY) refused the plugin's proxy credentials (407): check the user:password in the file named by CONJUR_SWARM_PROXY_CREDENTIAL_FILE", e.Proxy)
	case e.Status != 0:
		return fmt.Sprintf("the HTTP proxy %s (CONJUR_SWARM_PROXY) refused to connect to Conjur (%s): allow CONNECT to Conjur's host and port in the proxy", e.Proxy, e.Text)
	}
	return fmt.Sprintf("the HTTP proxy %s (CONJUR_SWARM_PROXY) could not be used (%s): check that it is up and reachable from this node", e.Proxy, e.Text)
}

// useProxy makes tr reach Conjur through cfg.Proxy only: net/http's CONNECT
// with the credential file read for each tunnel, the proxy's refusals and
// connection failures as *ProxyError, and, for an https:// proxy, TLS to
// the proxy verified against caPEM and the system's CAs.
func useProxy(tr *http.Transport, cfg Config, caPEM []byte) {
	u, _ := url.Parse(cfg.Proxy) // checked by Validate
	proxy := u.Host
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: u.Scheme, Host: u.Host})
	dialer := &net.Dialer{Timeout: cfg.FetchTimeout, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr) // addr is the proxy's: every request goes through it
		if err != nil {
			return nil, &ProxyError{Proxy: proxy, Text: "connect to the proxy: " + netText(errText(err)), Cause: err}
		}
		return conn, nil
	}
	if u.Scheme == "https" {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: proxyRoots(caPEM), ServerName: u.Hostname()}
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := tr.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(conn, tlsCfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = conn.Close()
				return nil, &ProxyError{Proxy: proxy, Text: "TLS to the proxy: " + netText(errText(err)), Cause: err}
			}
			return tc, nil
		}
	}
	tr.GetProxyConnectHeader = func(ctx context.Context, _ *url.URL, _ string) (http.Header, error) {
		if st, ok := ctx.Value(tunnelKey{}).(*tunnelStage); ok {
			st.asked.Store(true)
		}
		h := http.Header{"User-Agent": {"conjur-swarm"}}
		auth, err := proxyAuthorization(cfg.ProxyCredentialFile)
		if err != nil {
			return nil, &ProxyError{Proxy: proxy, Text: err.Error()}
		}
		if auth != "" {
			h.Set("Proxy-Authorization", auth)
		}
		return h, nil
	}
	tr.OnProxyConnectResponse = func(ctx context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
		if st, ok := ctx.Value(tunnelKey{}).(*tunnelStage); ok {
			st.answered.Store(true)
		}
		if resp.StatusCode != http.StatusOK { // the body, the proxy's page, is never read or logged
			return &ProxyError{Proxy: proxy, Status: resp.StatusCode, Text: netText(resp.Status)}
		}
		return nil
	}
}

// tunnelStage follows one request's CONNECT: net/http reports a CONNECT
// answer it cannot read (cut at MaxResponseHeaderBytes, or not HTTP) as a
// bare error, which proxyFailure then names as the proxy's.
type tunnelStage struct{ asked, answered atomic.Bool }

type tunnelKey struct{}

// withTunnelStage is ctx carrying a fresh tunnelStage.
func withTunnelStage(ctx context.Context) (context.Context, *tunnelStage) {
	st := &tunnelStage{}
	return context.WithValue(ctx, tunnelKey{}, st), st
}

// proxyFailure is err as a *ProxyError when it ended a CONNECT before the
// proxy's answer was read.
func proxyFailure(st *tunnelStage, proxyURL string, err error) error {
	var pe *ProxyError
	if errors.As(err, &pe) || !st.asked.Load() || st.answered.Load() {
		return err
	}
	u, _ := url.Parse(proxyURL)
	return &ProxyError{Proxy: u.Host, Text: "read the proxy's answer to CONNECT: " + netText(err.Error()), Cause: err}
}

// proxyRoots is the system's CAs (none in a plugin image without them) plus
// those of caPEM.
func proxyRoots(caPEM []byte) *x509.CertPool {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	roots.AppendCertsFromPEM(caPEM)
	return roots
}

// proxyAuthorization reads the credential file: "user:password" on its
// first line.
func proxyAuthorization(credFile string) (string, error) {
	if credFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(credFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in our text already
		}
		return "", fmt.Errorf("cannot read CONJUR_SWARM_PROXY_CREDENTIAL_FILE %s: %w", credFile, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if !strings.Contains(line, ":") {
		return "", fmt.Errorf("CONJUR_SWARM_PROXY_CREDENTIAL_FILE %s does not hold user:password on its first line", credFile)
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(line)), nil
}

// errText is err's text with the dialer's own prefixes kept short.
func errText(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
