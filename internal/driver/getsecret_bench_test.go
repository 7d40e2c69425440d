package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// The benchmarks put one GetSecret through the real socket (driver, policy
// store on the demo mapping, conjur.Client, conjurdev over loopback HTTP,
// warm token, cache off) next to one direct conjur-api-go RetrieveSecret
// against the same server, so the difference is what the socket, the
// policy and the driver add. `make bench` runs them:
//
//	go test -run '^$' -bench . -benchmem ./internal/driver/

const benchVariable = "apps/demo/db-password"

var sinkRequest pluginapi.Request

// benchRequestBody is a GetSecret body as swarmkit sends it for a stack
// secret, with the fields Docker fills in.
var benchRequestBody = []byte(`{"SecretName":"shop_db-password","SecretLabels":{"com.docker.stack.namespace":"shop"},` +
	`"ServiceHostname":"web","ServiceID":"kq2b0s7rqw3h7n0z8v9y1x2c3","ServiceName":"shop_web",` +
	`"ServiceLabels":{"com.docker.stack.image":"registry.example.com/shop/web:1.4","com.docker.stack.namespace":"shop"},` +
	`"TaskID":"u5t3v0o0k7r5m2n1b9c8x7z6y","TaskName":"shop_web.1.u5t3v0o0k7r5m2n1b9c8x7z6y",` +
	`"TaskImage":"registry.example.com/shop/web:1.4@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",` +
	`"NodeID":"n0d3id0000000000000000001","ServiceEndpointSpec":{"Mode":1}}`)

func BenchmarkDecodeRequest(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequestBody)))
	for b.Loop() {
		req, err := pluginapi.ReadRequest(bytes.NewReader(benchRequestBody))
		if err == nil {
			err = req.Validate()
		}
		if err != nil {
			b.Fatal(err)
		}
		sinkRequest = req
	}
}

// benchConjur is conjurdev seeded with the demo data, listening on loopback
// HTTP, and the plugin host's API key.
type benchConjur struct {
	dev *conjurdev.Server
	url string
	key string
}

func newBenchConjur(b *testing.B) benchConjur {
	b.Helper()
	dev, err := conjurdev.New(conjurdev.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := dev.LoadDemo(examples); err != nil {
		b.Fatal(err)
	}
	key, err := dev.APIKey(pluginRole)
	if err != nil {
		b.Fatal(err)
	}
	l, err := dev.Listen("127.0.0.1:0", false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return benchConjur{dev: dev, url: l.URL, key: key}
}

// keepAliveClient posts GetSecret bodies on a unix socket over one kept-alive
// connection, as Docker's plugin client does between calls.
type keepAliveClient struct {
	hc *http.Client
	tr *http.Transport
}

func newKeepAliveClient(sock string) *keepAliveClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 4,
	}
	return &keepAliveClient{hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr: tr}
}

func (c *keepAliveClient) get(body []byte) (pluginapi.Response, error) {
	req, err := http.NewRequest(http.MethodPost, "http://plugin"+pluginapi.PathGetSecret, bytes.NewReader(body))
	if err != nil {
		return pluginapi.Response{}, err
	}
	req.Header.Set("Accept", pluginapi.AcceptHeader)
	resp, err := c.hc.Do(req)
	if err != nil {
		return pluginapi.Response{}, err
	}
	defer resp.Body.Close()
	var res pluginapi.Response
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return pluginapi.Response{}, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return res, nil
}

// benchPlugin serves a driver (demo mapping, conjur.Client on cj, cache
// off) on a unix socket until the benchmark ends, and returns a kept-alive
// client for it.
func benchPlugin(b *testing.B, cj benchConjur) *keepAliveClient {
	b.Helper()
	store, err := policy.NewStore(filepath.Join(examples, "mapping.yml"), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	client, err := conjur.New(conjur.Config{
		ApplianceURLs: []string{cj.url},
		Account:       cj.dev.Account(),
		Login:         pluginLogin,
		AllowHTTP:     true,
		APIKey:        redact.String(cj.key),
	}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Close() })
	d, err := New(Options{Resolver: store, Conjur: client, Account: cj.dev.Account(), Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(b.TempDir(), pluginapi.SocketName)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(d, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, 5*time.Second) }()
	c := newKeepAliveClient(sock)
	b.Cleanup(func() {
		c.tr.CloseIdleConnections()
		cancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	})
	return c
}

func BenchmarkGetSecretSocket(b *testing.B) {
	cj := newBenchConjur(b)
	c := benchPlugin(b, cj)
	body, err := json.Marshal(byLabel("db_password", benchVariable))
	if err != nil {
		b.Fatal(err)
	}
	// The first call authenticates; the timed ones reuse the token.
	if res, err := c.get(body); err != nil || res.Err != "" || len(res.Value) == 0 {
		b.Fatalf("warm-up GetSecret: err=%v answer=%v", err, res)
	}
	cj.dev.ResetCounts()
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.get(body)
		if err != nil || res.Err != "" {
			b.Fatalf("GetSecret: err=%v answer=%v", err, res)
		}
	}
	b.ReportMetric(float64(cj.dev.Count("authn")), "authn-total")
}

func BenchmarkDirectFetch(b *testing.B) {
	cj := newBenchConjur(b)
	api, err := conjurapi.NewClientFromKey(conjurapi.Config{
		Account:           cj.dev.Account(),
		ApplianceURL:      cj.url,
		CredentialStorage: conjurapi.CredentialStorageNone,
		Environment:       conjurapi.EnvironmentOSS,
	}, authn.LoginPair{Login: pluginLogin, APIKey: cj.key})
	if err != nil {
		b.Fatal(err)
	}
	defer api.GetHttpClient().CloseIdleConnections()
	if _, err := api.RetrieveSecret(benchVariable); err != nil { // authenticate outside the timer
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := api.RetrieveSecret(benchVariable); err != nil {
			b.Fatal(err)
		}
	}
}
