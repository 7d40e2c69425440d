package conjurdev

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// maxRequests bounds the request log: older entries are dropped first.
const maxRequests = 10000

// Request is one request the server answered, for tests that assert what
// a client sent (e.g. that one batch request never carries two
// identities). It holds ids, never values, keys or tokens.
type Request struct {
	Endpoint  string   // one of the Ep* names
	Role      string   // full role id the access token authenticated; "" for authentication calls and refusals before it
	Variables []string // ids of the variables a secret or batch read named
	Status    int      // HTTP status answered; 0 for a dropped connection
}

// requestLog keeps the last maxRequests requests: once full, a ring whose
// oldest entry is at next, so logging a request costs the same however long
// the server has run (dropping the oldest by moving the rest cost a copy of
// the whole log per request).
type requestLog struct {
	mu   sync.Mutex
	reqs []Request
	next int
}

func (l *requestLog) add(r Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reqs) < maxRequests {
		l.reqs = append(l.reqs, r)
		return
	}
	l.reqs[l.next] = r
	l.next = (l.next + 1) % maxRequests
}

// ordered is a copy of the log, oldest first.
func (l *requestLog) ordered() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Concat(l.reqs[l.next:], l.reqs[:l.next])
}

// Requests is the log of requests answered so far (the last 10,000), in
// the order they finished.
func (s *Server) Requests() []Request { return s.reqLog.ordered() }

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.reqLog.mu.Lock()
	defer s.reqLog.mu.Unlock()
	s.reqLog.reqs, s.reqLog.next = nil, 0
}

// noteRole and noteVariables fill in the log entry of the request being
// answered: w is the writer handle gave the handler. The entry keeps ids
// as they are: callers do not change them afterwards.
func noteRole(w http.ResponseWriter, role string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.entry.Role = role
	}
}

func noteVariables(w http.ResponseWriter, ids []string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.entry.Variables = ids
	}
}

// handle registers h for pattern, counting requests as endpoint ep,
// applying the fault switches and logging the request; write marks
// changes refused by a follower.
func (s *Server) handle(pattern, ep string, write bool, h http.HandlerFunc) {
	c := s.counts[ep]
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c.Add(1)
		// One allocation per request for the writer and its log entry,
		// which the handler fills in through the writer (noteRole).
		rec := &statusRecorder{ResponseWriter: w, entry: Request{Endpoint: ep}}
		defer s.logRequest(rec) // also when a fault panics to drop the connection
		if s.faults.apply(rec, r, write) {
			return
		}
		ce := s.log.Check(zap.DebugLevel, "request")
		var start time.Time
		if ce != nil {
			start = time.Now()
		}
		h(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if ce != nil {
			ce.Write(zap.String("endpoint", ep), zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.Int("status", rec.status),
				zap.Duration("duration", time.Since(start)))
		}
	})
}

// logRequest adds rec's entry, with the status answered, to the request log.
func (s *Server) logRequest(rec *statusRecorder) {
	rec.entry.Status = rec.status
	s.reqLog.add(rec.entry)
}

// statusRecorder is the writer every handler is given: it keeps the status
// answered and the request's log entry.
type statusRecorder struct {
	http.ResponseWriter
	status int
	entry  Request
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Hijack lets the drop fault close the connection under the recorder.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("conjurdev: the connection cannot be taken over")
	}
	return hj.Hijack()
}
