package conjur

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// The explicit HTTP proxy (CONJUR_SWARM_PROXY). Ambient HTTPS_PROXY and
// friends are never read: only this setting makes the plugin use a proxy,
// and only the Conjur transport uses it. Every connection to Conjur is a
// CONNECT tunnel through the proxy, inside which TLS runs end to end and is
// verified against Conjur's CA as without a proxy: the proxy sees the
// target host and port, and ciphertext.
//
// The proxy's user:password is never a setting (settings show in docker
// plugin inspect): it is read from CONJUR_SWARM_PROXY_CREDENTIAL_FILE (on
// the identity mount) for each new tunnel and sent as Basic
// Proxy-Authorization. No error, log line or status text carries it.

// checkProxy validates CONJUR_SWARM_PROXY: http://HOST:PORT, nothing else.
func checkProxy(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("CONJUR_SWARM_PROXY %q: give the proxy as http://HOST:PORT", redactUserinfo(raw))
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

// ProxyError is a failure of the proxy rather than of Conjur: the proxy
// could not be reached, or it answered CONNECT with Status.
type ProxyError struct {
	Proxy  string // host:port
	Status int    // the CONNECT answer's status; 0 when the proxy was not reached or gave no answer
	Text   string // what went wrong, without credentials
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

// proxyDialer opens CONNECT tunnels through one proxy.
type proxyDialer struct {
	proxy    string // host:port
	credFile string
	timeout  time.Duration
}

func newProxyDialer(cfg Config) *proxyDialer {
	u, _ := url.Parse(cfg.Proxy) // checked by Validate
	return &proxyDialer{proxy: u.Host, credFile: cfg.ProxyCredentialFile, timeout: cfg.FetchTimeout}
}

// proxyAuthorization reads the credential file: "user:password" on its
// first line.
func (d *proxyDialer) proxyAuthorization() (string, error) {
	if d.credFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(d.credFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in our text already
		}
		return "", fmt.Errorf("cannot read CONJUR_SWARM_PROXY_CREDENTIAL_FILE %s: %w", d.credFile, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if !strings.Contains(line, ":") {
		return "", fmt.Errorf("CONJUR_SWARM_PROXY_CREDENTIAL_FILE %s does not hold user:password on its first line", d.credFile)
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(line)), nil
}

// DialContext connects to addr (Conjur's host:port) through the proxy.
func (d *proxyDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	auth, err := d.proxyAuthorization()
	if err != nil {
		return nil, &ProxyError{Proxy: d.proxy, Text: err.Error()}
	}
	conn, err := (&net.Dialer{Timeout: d.timeout, KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", d.proxy)
	if err != nil {
		return nil, &ProxyError{Proxy: d.proxy, Text: "connect to the proxy: " + errText(err), Cause: err}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req := &http.Request{
		Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr,
		Header: http.Header{"User-Agent": {"conjur-swarm"}},
	}
	if auth != "" {
		req.Header.Set("Proxy-Authorization", auth)
	}
	// Close the tunnel if ctx ends while the proxy thinks.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := req.Write(conn); err != nil {
		_ = conn.Close()
		return nil, &ProxyError{Proxy: d.proxy, Text: "send CONNECT to the proxy: " + errText(err), Cause: err}
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		_ = conn.Close()
		return nil, &ProxyError{Proxy: d.proxy, Text: "read the proxy's answer to CONNECT: " + errText(err), Cause: err}
	}
	_ = resp.Body.Close() // never read or logged: it is the proxy's page, not Conjur's
	if resp.StatusCode != http.StatusOK {
		_ = conn.Close()
		return nil, &ProxyError{Proxy: d.proxy, Status: resp.StatusCode, Text: resp.Status}
	}
	if !stop() && ctx.Err() != nil {
		_ = conn.Close()
		return nil, ctx.Err()
	}
	if br.Buffered() > 0 { // the proxy spoke before TLS started: not a clean tunnel
		_ = conn.Close()
		return nil, &ProxyError{Proxy: d.proxy, Text: "the proxy sent data after its CONNECT answer"}
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// errText is err's text with the dialer's own prefixes kept short.
func errText(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
