// Command rtt times the lab Conjur's round trip for what a plugin's fetch
// asks, from where the plugin runs: the lab runs it in a manager's network
// namespace (nsenter --net), as its own process, like the plugin. It logs
// in as the plugin's host with the API key it reads on stdin, then sends
// authenticated reads, one after another, over one kept-alive TLS
// connection, and prints how long each took, in nanoseconds, one a line
// (the first, which also connects, is left out). A read names one variable
// (GET /secrets/{account}/variable/{id}) or, given several, is the batch
// request the plugin sends (GET /secrets?variable_ids=..., values in
// base64). It prints nothing of the key, the token or the values.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	base := flag.String("url", "", "Conjur appliance URL")
	account := flag.String("account", "", "Conjur account")
	login := flag.String("login", "", "Conjur login")
	caFile := flag.String("ca-file", "", "Conjur's CA certificate")
	variables := flag.String("variables", "", "variable to read, or several, comma-separated, for a batch read")
	n := flag.Int("n", 50, "reads to time")
	flag.Parse()
	if err := run(*base, *account, *login, *caFile, strings.Split(*variables, ","), *n); err != nil {
		fmt.Fprintln(os.Stderr, "rtt:", err)
		os.Exit(1)
	}
}

func run(base, account, login, caFile string, variables []string, n int) error {
	key, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
	if err != nil {
		return fmt.Errorf("reading the API key on stdin: %w", err)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%s holds no certificate", caFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Post(base+"/authn/"+account+"/"+url.PathEscape(login)+"/authenticate", "text/plain", strings.NewReader(strings.TrimSpace(string(key))))
	if err != nil {
		return fmt.Errorf("authenticating: %w", err)
	}
	token, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("authenticating answered %d", resp.StatusCode)
	}
	auth := `Token token="` + base64.StdEncoding.EncodeToString(token) + `"`
	target := base + "/secrets/" + account + "/variable/" + url.PathEscape(variables[0])
	if len(variables) > 1 {
		full := make([]string, len(variables))
		for i, v := range variables {
			full[i] = account + ":variable:" + v
		}
		target = base + "/secrets?variable_ids=" + url.QueryEscape(strings.Join(full, ","))
	}
	for i := 0; i <= n; i++ {
		req, err := http.NewRequest(http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", auth)
		if len(variables) > 1 {
			req.Header.Set("Accept-Encoding", "base64")
		}
		t0 := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("reading %s: %w", strings.Join(variables, ","), err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("reading %s answered %d", strings.Join(variables, ","), resp.StatusCode)
		}
		if i > 0 {
			fmt.Println(d.Nanoseconds())
		}
	}
	return nil
}
