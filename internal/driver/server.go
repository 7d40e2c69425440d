package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// connTimeouts bound how long one connection to the plugin socket may hold a
// goroutine: a caller that sends its headers or body slowly, or never
// finishes them, is cut off instead of being waited for forever. read and
// write must stay above the longest handler (GetSecret's 25 s
// RequestTimeout, the handoff's adoptTimeout): net/http cancels a request's
// context when the read deadline passes while its handler still runs.
// A variable so that tests can shorten it.
var connTimeouts = struct{ readHeader, read, write, idle time.Duration }{
	readHeader: 10 * time.Second,
	read:       60 * time.Second,
	write:      60 * time.Second,
	idle:       120 * time.Second,
}

// maxHeaderBytes bounds a request's headers (Docker sends a handful).
const maxHeaderBytes = 64 << 10

// manifest is the answer to /Plugin.Activate, which Docker sends only to
// legacy (non-managed) plugins.
const manifest = `{"Implements": ["secretprovider"]}`

// Server serves a Driver on a listener: GetSecret for Swarm, /Plugin.Activate
// for legacy plugins, and the private status and bootstrap endpoints.
//
// Answers are encoded with go-plugins-helpers' sdk (EncodeResponse, its
// media type and the Activate manifest) as its secrets handler does. The
// listener is served by a net/http Server of our own rather than
// sdk.Handler.Serve, because that one cannot be shut down: a drain must know
// when each response has been written, which only http.Server.Shutdown does.
type Server struct {
	d   *Driver
	log *zap.Logger
	hs  *http.Server

	mu       sync.Mutex
	idle     *sync.Cond // signalled when inflight drops to zero
	inflight int
	started  bool
	served   chan struct{} // closed when http.Server.Serve has returned
	stopOnce sync.Once
	stopped  chan struct{} // closed when Shutdown has finished
}

// NewServer returns a Server for d.
func NewServer(d *Driver, log *zap.Logger) *Server {
	s := &Server{
		d:       d,
		log:     log,
		served:  make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	mux := http.NewServeMux()
	mux.HandleFunc(pluginapi.PathActivate, activate)
	mux.HandleFunc(pluginapi.PathGetSecret, s.guard(http.MethodPost, s.getSecret))
	mux.HandleFunc(pluginapi.PathStatus, s.guard("", s.status))
	mux.HandleFunc(pluginapi.PathBootstrap, s.guard(http.MethodPost, s.bootstrap))
	s.hs = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: connTimeouts.readHeader,
		ReadTimeout:       connTimeouts.read,
		WriteTimeout:      connTimeouts.write,
		IdleTimeout:       connTimeouts.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          httpErrorLog(log),
	}
	return s
}

// activate answers /Plugin.Activate as sdk.NewHandler does.
func activate(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	_, _ = fmt.Fprintln(w, manifest)
}

// Serve answers requests on l until ctx is done or Shutdown is called. When
// ctx is done it drains for at most drain before returning. Serve may be
// called once.
func (s *Server) Serve(ctx context.Context, l net.Listener, drain time.Duration) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("driver: Server.Serve called twice")
	}
	s.started = true
	s.mu.Unlock()

	errc := make(chan error, 1)
	go func() {
		defer close(s.served)
		errc <- s.hs.Serve(l)
	}()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		return s.Shutdown(sctx)
	case <-s.stopped:
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			<-s.stopped
			return nil
		}
		_ = s.Shutdown(context.Background())
		return fmt.Errorf("serving the plugin socket: %w", err)
	}
}

// Shutdown stops accepting connections and lets in-flight requests finish
// and their answers be written, until ctx is done; then it closes every
// connection (cancelling what still runs) and waits for the handlers to
// return. It returns ctx's error when requests were still running at the
// deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.hs.Shutdown(ctx)
	if err != nil {
		_ = s.hs.Close()
		err = fmt.Errorf("shutdown: requests still running: %w", err)
	}
	s.mu.Lock()
	for s.inflight > 0 {
		s.idle.Wait()
	}
	started := s.started
	s.mu.Unlock()
	if started {
		<-s.served
	}
	s.stopOnce.Do(func() { close(s.stopped) })
	s.d.Close()
	return err
}

// guard counts a request as in flight, checks the method ("" = any) and
// turns a panic into an INTERNAL answer.
func (s *Server) guard(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.inflight++
		s.mu.Unlock()
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic while answering a request", zap.String("path", r.URL.Path), zap.Any("panic", p), zap.StackSkip("stack", 1))
				writeJSON(w, http.StatusInternalServerError, pluginapi.Response{Err: fmt.Sprintf("conjur-swarm [%s] the plugin failed unexpectedly; see its log", errcode.Internal)}.Wire())
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
			writeJSON(w, http.StatusMethodNotAllowed, pluginapi.Response{Err: fmt.Sprintf("conjur-swarm [%s] %s needs %s", errcode.BadRequest, r.URL.Path, method)}.Wire())
			return
		}
		h(w, r)
	}
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	res := s.d.HandleGetSecret(r.Context(), r.Body)
	// As go-plugins-helpers' secrets handler does: an answer with Err goes
	// out with status 500; swarmkit's caller treats both as failure. Wire
	// is the one place the value leaves the redact type.
	sdk.EncodeResponse(w, res.Wire(), res.Err != "")
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

// httpErrorLog adapts log for net/http's error messages, at warn level.
func httpErrorLog(log *zap.Logger) *stdlog.Logger {
	l, err := zap.NewStdLogAt(log, zap.WarnLevel)
	if err != nil { // only for an invalid level, which WarnLevel is not
		return zap.NewStdLog(log)
	}
	return l
}
