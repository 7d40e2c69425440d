package conjurdev

import (
	"testing"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
)

// The benchmarks measure authenticated single-secret fetches through
// conjur-api-go against the server over real HTTP, so that later
// benchmarks know whether the dev server is their bottleneck. Run:
//
//	go test -run x -bench . -benchmem ./internal/conjurdev/

func benchEnv(b *testing.B, useTLS bool) (conjurapi.Config, string) {
	b.Helper()
	srv, err := New(Options{AdminAPIKey: adminKey})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := srv.LoadDemo("../../docs/examples"); err != nil {
		b.Fatal(err)
	}
	l, err := srv.Listen("127.0.0.1:0", useTLS)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	key, err := srv.APIKey(pluginRole)
	if err != nil {
		b.Fatal(err)
	}
	return conjurapi.Config{
		Account:           srv.Account(),
		ApplianceURL:      l.URL,
		CredentialStorage: conjurapi.CredentialStorageNone,
		Environment:       conjurapi.EnvironmentOSS,
		SSLCert:           string(l.CAPEM),
	}, key
}

func benchClient(b *testing.B, cfg conjurapi.Config, key string) *conjurapi.Client {
	c, err := conjurapi.NewClientFromKey(cfg, authn.LoginPair{Login: pluginLogin, APIKey: key})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.RetrieveSecret("apps/demo/db-password"); err != nil { // authenticate outside the timer
		b.Fatal(err)
	}
	return c
}

func benchSerial(b *testing.B, useTLS bool) {
	cfg, key := benchEnv(b, useTLS)
	c := benchClient(b, cfg, key)
	defer c.GetHttpClient().CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.RetrieveSecret("apps/demo/db-password"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fetches/s")
}

func benchParallel(b *testing.B, useTLS bool) {
	cfg, key := benchEnv(b, useTLS)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// One client per goroutine: conjur-api-go clients are not safe for
		// concurrent token refresh.
		c := benchClient(b, cfg, key)
		defer c.GetHttpClient().CloseIdleConnections()
		for pb.Next() {
			if _, err := c.RetrieveSecret("apps/demo/db-password"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fetches/s")
}

func BenchmarkClientFetch(b *testing.B)            { benchSerial(b, false) }
func BenchmarkClientFetchTLS(b *testing.B)         { benchSerial(b, true) }
func BenchmarkClientFetchParallel(b *testing.B)    { benchParallel(b, false) }
func BenchmarkClientFetchParallelTLS(b *testing.B) { benchParallel(b, true) }
