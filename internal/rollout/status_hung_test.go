package rollout

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/swarmapi"
)

// hungDocker is a Docker Engine socket that takes every request and never
// answers: asked receives once a request is in, and the handler waits
// until the test ends.
func hungDocker(t *testing.T) (sock string, asked <-chan struct{}) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := &http.Server{ReadHeaderTimeout: time.Minute, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		select {
		case in <- struct{}{}:
		default:
		}
		<-release
	})}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(release)
		_ = srv.Close()
		<-served
	})
	return sock, in
}

// `rollout-agent status` answers while a pass is blocked on a hung Docker
// Engine: the pass holds the agent's lock only to read and write its state,
// never across a call to Docker. The pass is provably blocked (the engine
// holds its request, and the pass has not returned) when the status is
// asked for; the deadline only bounds a failure.
func TestStatusAnswersWhileAPassWaitsOnDocker(t *testing.T) {
	sock, asked := hungDocker(t)
	docker := swarmapi.New(sock)
	t.Cleanup(docker.Close)
	p, err := policy.Parse("mapping.yml", []byte(testMapping))
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	a, err := New(Options{
		Docker: docker, Versions: &fakeConjur{versions: map[string]int{}},
		Policy:  func() (*policy.Policy, error) { return p, nil },
		Account: "myorg", Drivers: NewDrivers(driver), Logger: zap.NewNop(), Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}

	statusSock := filepath.Join(t.TempDir(), "rollout.sock")
	sln, err := ListenStatus(statusSock)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopStatus := context.WithCancel(context.Background())
	statusDone := make(chan error, 1)
	go func() { statusDone <- a.ServeStatus(sctx, sln) }()
	defer func() {
		stopStatus()
		<-statusDone
	}()

	pctx, stopPass := context.WithCancel(context.Background())
	passDone := make(chan PassResult, 1)
	go func() { passDone <- a.Pass(pctx) }()
	<-asked // the pass waits on the engine from here on

	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a failure guard, not a measure
	defer cancel()
	st, err := FetchStatus(fctx, statusSock)
	if err != nil {
		stopPass()
		<-passDone
		t.Fatalf("rollout-agent status did not answer while a pass waited on Docker: %v", err)
	}
	select {
	case r := <-passDone:
		t.Fatalf("the pass ended (%+v) before the status answered; want it blocked on the engine", r)
	default:
	}
	if !st.LastPass.Equal(clk.Now()) || st.Error != nil {
		t.Errorf("status %+v; want the pass in progress (last pass now, no error yet)", st)
	}

	stopPass()
	r := <-passDone
	if r.Err == nil || r.Err.Code != errcode.DockerUnavailable || !errors.Is(pctx.Err(), context.Canceled) {
		t.Errorf("the cancelled pass gave %+v, want DOCKER_UNAVAILABLE", r.Err)
	}
}
