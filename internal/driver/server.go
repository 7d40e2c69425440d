package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"go.uber.org/zap"
)

// Paths served on the plugin socket.
const (
	PathGetSecret = "/SecretProvider.GetSecret"
	PathStatus    = "/ConjurSwarm.Status"
	PathBootstrap = "/ConjurSwarm.Bootstrap"
	PathActivate  = "/Plugin.Activate"
)

// manifest is the answer to /Plugin.Activate, which Docker sends only to
// legacy (non-managed) plugins.
const manifest = `{"Implements": ["secretprovider"]}`

// Server serves a Driver on a listener with go-plugins-helpers' sdk handler:
// GetSecret for Swarm, plus the private status and bootstrap endpoints.
// Shutdown stops accepting, lets in-flight requests finish, then closes the
// remaining (idle) connections.
type Server struct {
	d   *Driver
	log *zap.Logger
	h   sdk.Handler

	mu       sync.Mutex
	idle     *sync.Cond // signalled when inflight drops to zero
	inflight int
	closing  bool
	conns    map[net.Conn]struct{}
	ln       net.Listener
	served   chan struct{} // closed when the sdk's Serve has returned
	stopOnce sync.Once
	stopped  chan struct{} // closed by Shutdown
}

// NewServer returns a Server for d.
func NewServer(d *Driver, log *zap.Logger) *Server {
	s := &Server{
		d:       d,
		log:     log,
		h:       sdk.NewHandler(manifest),
		conns:   map[net.Conn]struct{}{},
		served:  make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	s.h.HandleFunc(PathGetSecret, s.guard(http.MethodPost, s.getSecret))
	s.h.HandleFunc(PathStatus, s.guard("", s.status))
	s.h.HandleFunc(PathBootstrap, s.guard(http.MethodPost, s.bootstrap))
	return s
}

// Serve answers requests on l until ctx is done or Shutdown is called. When
// ctx is done it drains for at most drain before returning. Serve may be
// called once.
func (s *Server) Serve(ctx context.Context, l net.Listener, drain time.Duration) error {
	s.mu.Lock()
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("driver: Server.Serve called twice")
	}
	s.ln = &trackingListener{Listener: l, s: s}
	s.mu.Unlock()

	errc := make(chan error, 1)
	go func() {
		defer close(s.served)
		errc <- s.h.Serve(s.ln)
	}()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		return s.Shutdown(sctx)
	case <-s.stopped:
		<-s.served
		return nil
	case err := <-errc:
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		if closing {
			<-s.stopped
			return nil
		}
		_ = s.Shutdown(context.Background())
		return fmt.Errorf("serving the plugin socket: %w", err)
	}
}

// Shutdown stops accepting connections, waits for in-flight requests until
// ctx is done, then closes every connection. It returns ctx's error when
// requests were still running at the deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}

	drained := make(chan struct{})
	go func() {
		s.mu.Lock()
		for s.inflight > 0 {
			s.idle.Wait()
		}
		s.mu.Unlock()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("shutdown: requests still running: %w", ctx.Err())
	}

	// With every connection closed, handlers still running past the
	// deadline see their request context cancelled and return soon.
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	<-drained
	if ln != nil {
		<-s.served
	}
	s.stopOnce.Do(func() { close(s.stopped) })
	return err
}

// guard counts a request as in flight, refuses it while stopping, checks
// the method ("" = any) and turns a panic into an INTERNAL answer.
func (s *Server) guard(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusServiceUnavailable, Response{Err: fmt.Sprintf("conjur-swarm [%s] the plugin is stopping; Swarm retries the task", CodeUnavailable)})
			return
		}
		s.inflight++
		s.mu.Unlock()
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic while answering a request", zap.String("path", r.URL.Path), zap.Any("panic", p), zap.StackSkip("stack", 1))
				writeJSON(w, http.StatusInternalServerError, Response{Err: fmt.Sprintf("conjur-swarm [%s] the plugin failed unexpectedly; see its log", CodeInternal)})
			}
			s.mu.Lock()
			s.inflight--
			if s.inflight == 0 {
				s.idle.Broadcast()
			}
			s.mu.Unlock()
		}()
		if method != "" && r.Method != method {
			w.Header().Set("Allow", method)
			writeJSON(w, http.StatusMethodNotAllowed, Response{Err: fmt.Sprintf("conjur-swarm [%s] %s needs %s", CodeBadRequest, r.URL.Path, method)})
			return
		}
		h(w, r)
	}
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	res := s.d.HandleGetSecret(r.Context(), r.Body)
	// As go-plugins-helpers' secrets handler does: an answer with Err goes
	// out with status 500; swarmkit's caller treats both as failure.
	sdk.EncodeResponse(w, res, res.Err != "")
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.d.Status())
}

func (s *Server) bootstrap(w http.ResponseWriter, r *http.Request) {
	ans, code := s.d.Bootstrap(r.Context(), r.Body)
	writeJSON(w, code, ans)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// trackingListener remembers accepted connections so Shutdown can close
// the idle ones that the sdk's http.Server would otherwise keep open.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	if l.s.closing {
		l.s.mu.Unlock()
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.s.conns[tc] = struct{}{}
	l.s.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}
