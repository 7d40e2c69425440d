package driver

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// BenchmarkGetSecretOverSocket measures the plugin's own cost per request:
// the unix socket, HTTP, decoding, the policy stand-in, the audit line (to a
// no-op logger) and encoding, with an in-memory fetcher.
func BenchmarkGetSecretOverSocket(b *testing.B) {
	d, err := New(Options{Resolver: &fakeResolver{}, Conjur: demoFetcher(), Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	sock := b.TempDir() + "/" + pluginapi.SocketName
	ln, err := listenUnix(sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(d, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, time.Second) }()
	defer func() { cancel(); <-done }()

	c := pluginapi.NewClient(sock, 10*time.Second)
	req := labelled("apps/demo/db-password")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.GetSecret(context.Background(), req)
			if err != nil || res.Err != "" {
				b.Errorf("GetSecret: %v %s", err, res.Err)
				return
			}
		}
	})
}

// BenchmarkGetSecretInProcess is the pipeline without the socket.
func BenchmarkGetSecretInProcess(b *testing.B) {
	d, err := New(Options{Resolver: &fakeResolver{}, Conjur: demoFetcher(), Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	req := labelled("apps/demo/db-password")
	b.ReportAllocs()
	for b.Loop() {
		if res := d.GetSecret(context.Background(), req); res.Err != "" {
			b.Fatal(res.Err)
		}
	}
}
