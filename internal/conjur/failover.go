package conjur

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi/authn"
	"github.com/cyberark/conjur-api-go/conjurapi/response"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// urlFailure is one URL that failed during a request.
type urlFailure struct {
	url string
	err error
}

// failoverError says that no URL answered.
type failoverError struct{ fails []urlFailure }

func (e *failoverError) Error() string {
	parts := make([]string, len(e.fails))
	for i, f := range e.fails {
		parts[i] = f.url + ": " + shortCause(f.err)
	}
	if len(parts) == 0 {
		return "no appliance URL was tried"
	}
	return strings.Join(parts, "; ")
}

func (e *failoverError) Unwrap() []error {
	errs := make([]error, len(e.fails))
	for i, f := range e.fails {
		errs[i] = f.err
	}
	return errs
}

// withFailover runs op against the URLs in order until one answers. A URL that
// fails (connect error, timeout, TLS, 5xx, 405, ...) is set aside with backoff
// and the next is tried within the same deadline; each attempt but the last
// gets an equal share of the time left. An answer (success, 401/403/404, a
// refusal) ends the loop: it is not retried elsewhere. When every URL failed
// and one of them failed certificate verification, the CA file is re-read
// before the failure is reported; a changed CA gets one more round.
//
// Only the URLs the credential in use may be sent to are tried (a handed-
// over credential names its URLs; see credential.Credential.MayGoTo).
func (s *session) withFailover(ctx context.Context, op func(context.Context, *endpoint) error) (string, error) {
	return s.withFailoverFor(ctx, s.scope(), op)
}

// withFailoverFor is withFailover for the URLs cred may be sent to.
func (s *session) withFailoverFor(ctx context.Context, cred credential.Credential, op func(context.Context, *endpoint) error) (string, error) {
	url, err := s.tryURLs(ctx, cred, op)
	var fe *failoverError
	if errors.As(err, &fe) && ctx.Err() == nil && fe.tlsFailed() && s.reloadCA(true, "a TLS failure") {
		return s.tryURLs(ctx, cred, op)
	}
	return url, err
}

// tlsFailed reports whether a URL failed certificate verification.
func (e *failoverError) tlsFailed() bool {
	return slices.ContainsFunc(e.fails, func(f urlFailure) bool { return isTLSVerification(f.err) })
}

// tryURLs is one round of withFailover.
func (s *session) tryURLs(ctx context.Context, cred credential.Credential, op func(context.Context, *endpoint) error) (string, error) {
	eps := s.candidates(cred)
	var fails []urlFailure
	for i, ep := range eps {
		if ctx.Err() != nil {
			break
		}
		actx, cancel := attemptContext(ctx, len(eps)-i, s.now())
		err := op(actx, ep)
		cancel()
		if err == nil {
			s.succeeded(ep)
			return ep.url, nil
		}
		if isAnswer(err) {
			if httpStatus(err) != 0 {
				s.succeeded(ep)
			}
			return ep.url, err
		}
		fails = append(fails, urlFailure{ep.url, err})
		if !errors.Is(ctx.Err(), context.Canceled) {
			s.failed(ep, err)
		}
	}
	return "", &failoverError{fails: fails}
}

const (
	backoffBase = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
)

// succeeded records that ep answered.
func (s *session) succeeded(ep *endpoint) {
	ep.mu.Lock()
	was := ep.failures
	ep.failures, ep.retryAt, ep.lastErr = 0, time.Time{}, ""
	ep.mu.Unlock()
	s.status.contact(ep.url)
	if was > 0 {
		s.log.Info("conjur appliance answers again", zap.String("url", ep.url), zap.Int("after_failures", was))
	}
}

// failed sets ep aside with exponential backoff.
func (s *session) failed(ep *endpoint, err error) {
	ep.mu.Lock()
	ep.failures++
	d := min(backoffBase<<min(ep.failures-1, 10), backoffMax)
	ep.retryAt = s.now().Add(d)
	ep.lastErr = err.Error()
	n := ep.failures
	ep.mu.Unlock()
	if n == 1 {
		s.log.Warn("conjur appliance set aside", zap.String("url", ep.url), zap.Duration("retry_in", d), zap.Error(err))
	}
}

// candidates lists the URLs cred may go to, to try: those not set aside in
// configured order, then the set-aside ones by earliest retry time (tried
// rather than failing at once).
func (s *session) candidates(cred credential.Credential) []*endpoint {
	now := s.now()
	var ready, later []*endpoint
	retry := map[*endpoint]time.Time{}
	for _, ep := range s.eps {
		if !cred.MayGoTo(ep.url) {
			continue
		}
		ep.mu.Lock()
		r := ep.retryAt
		ep.mu.Unlock()
		if r.IsZero() || !now.Before(r) {
			ready = append(ready, ep)
		} else {
			retry[ep] = r
			later = append(later, ep)
		}
	}
	slices.SortStableFunc(later, func(a, b *endpoint) int { return retry[a].Compare(retry[b]) })
	return append(ready, later...)
}

// attemptContext bounds one attempt to remaining/left of ctx's time when
// other URLs remain to be tried.
func attemptContext(ctx context.Context, left int, now time.Time) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok || left <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, now.Add(d.Sub(now)/time.Duration(left)))
}

// isAnswer reports whether err is Conjur's answer (to return as is) rather
// than a failure of the URL (to try the next one).
func isAnswer(err error) bool {
	var e *Error
	var se *scopeError
	switch {
	case errors.As(err, &se):
		return false
	case errors.As(err, &e):
		return true
	}
	if st := httpStatus(err); st != 0 {
		switch {
		case st == 405, st == 408, st == 429, st >= 500, st < 400:
			return false
		}
		return true
	}
	return !isTransport(err)
}

func isTransport(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func isTLSVerification(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// conjurError is response.ConjurError seen through this package.
type conjurError = response.ConjurError

func asConjurError(err error, target **conjurError) bool { return errors.As(err, target) }

// httpStatus is the HTTP status Conjur answered with, or 0.
func httpStatus(err error) int {
	var ce *conjurError
	if asConjurError(err, &ce) {
		return ce.Code
	}
	return 0
}

func messageOf(ce *conjurError) string {
	if ce.Details != nil && ce.Details.Message != "" {
		return ce.Details.Message
	}
	return ce.Message
}

// finalError turns what withFailover returned into an *Error for variable id
// ("" when not about a variable).
func (s *session) finalError(ctx context.Context, err error, id string) *Error {
	var e *Error
	if errors.As(err, &e) {
		if id != "" && e.Variable == "" {
			return e.withVariable(id)
		}
		return e
	}
	var fe *failoverError
	if errors.As(err, &fe) {
		if ctx.Err() != nil || s.life.ctx.Err() != nil { // life.ctx: Close may reach what the request waited for first
			return s.contextError(ctx, id, fe)
		}
		allTLS, allTimeouts := len(fe.fails) > 0, len(fe.fails) > 0
		for _, f := range fe.fails {
			allTLS = allTLS && isTLSVerification(f.err)
			allTimeouts = allTimeouts && isTimeout(f.err)
		}
		if allTimeouts { // slow, not down
			return s.contextError(ctx, id, fe)
		}
		for _, f := range fe.fails {
			var pe *ProxyError
			if errors.As(f.err, &pe) {
				return &Error{Code: errcode.Unavailable, Variable: id, Cause: fe, Msg: pe.advice()}
			}
		}
		if allTLS {
			return &Error{Code: errcode.TLS, Variable: id, Cause: fe,
				Msg: fmt.Sprintf("the TLS certificate of Conjur cannot be verified (%s): set CONJUR_CERT_FILE (or CONJUR_SSL_CERTIFICATE) to the CA certificate that signed it, and use the host name the certificate names", fe)}
		}
		return &Error{Code: errcode.Unavailable, Variable: id, Cause: fe,
			Msg: fmt.Sprintf("no Conjur appliance answered (%s): check that Conjur is up and reachable from this node, and CONJUR_APPLIANCE_URL", fe)}
	}
	var tl *tooLargeError
	if errors.As(err, &tl) {
		return &Error{Code: errcode.ValueUnusable, Variable: id, Cause: err,
			Msg: fmt.Sprintf("Conjur's answer cannot be used: %s, more than any it can hold (a secret value must be under 500 KiB): if the variable's value is larger, store a smaller one; else check that CONJUR_APPLIANCE_URL points at Conjur and that nothing in between alters its answers", tl)}
	}
	st := httpStatus(err)
	login := s.identity()
	switch st {
	case 403:
		if s.who != nil {
			return s.who.forbidden(id, err)
		}
		return &Error{Code: errcode.Forbidden, Variable: id, Cause: err,
			Msg: fmt.Sprintf("the plugin's Conjur identity %s may see variable %s but lacks execute on it: add a !permit with privilege execute on it for %s", login, id, login)}
	case 404:
		return &Error{Code: errcode.NotFound, Variable: id, Cause: err,
			Msg: fmt.Sprintf("variable %s does not exist, has no value yet, or is invisible to %s: check the id (mapping), set a value, and !permit read and execute on it", id, login)}
	case 401:
		if s.who != nil {
			return s.who.refused("", s.cfg.JWTServiceID, st, err).withVariable(id)
		}
		return &Error{Code: errcode.AuthRefused, Variable: id, Cause: err,
			Msg: fmt.Sprintf("Conjur refused the access token of %s (401): hand the current credential over again", login)}
	case 400, 422:
		return &Error{Code: errcode.BadRequest, Variable: id, Cause: err,
			Msg: fmt.Sprintf("Conjur rejected the request for variable %s as invalid (HTTP %d: %s): check the variable id", id, st, shortCause(err))}
	case 406:
		return &Error{Code: errcode.ValueUnusable, Variable: id, Cause: err,
			Msg: fmt.Sprintf("Conjur cannot send variable %s in the requested encoding (HTTP 406): report it with the Conjur version", id)}
	case 0:
		if ctx.Err() != nil {
			return s.contextError(ctx, id, err)
		}
		return &Error{Code: errcode.ValueUnusable, Variable: id, Cause: err,
			Msg: fmt.Sprintf("Conjur's answer for variable %s cannot be used (%s): check that CONJUR_APPLIANCE_URL points at Conjur 1.11 or later", id, shortCause(err))}
	}
	return &Error{Code: errcode.Unavailable, Variable: id, Cause: err,
		Msg: fmt.Sprintf("Conjur answered HTTP %d for variable %s: check Conjur's logs", st, id)}
}

// contextError is the error for a deadline or cancellation of a request.
func (s *session) contextError(ctx context.Context, id string, cause error) *Error {
	return contextError(s.life.ctx, ctx, id, cause, s.cfg.FetchTimeout)
}

// contextError is the error for ctx's deadline or cancellation, for variable
// id ("" when not about one); root is the Client's context, which Close
// cancels, and timeout the FetchTimeout the message names.
func contextError(root, ctx context.Context, id string, cause error, timeout time.Duration) *Error {
	if cause == nil {
		cause = ctx.Err()
	}
	if root.Err() != nil { // Close interrupted the request
		return errClosed.withVariable(id)
	}
	what := "the request"
	if id != "" {
		what = "variable " + id
	}
	if errors.Is(ctx.Err(), context.Canceled) && !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return &Error{Code: errcode.Canceled, Variable: id, Cause: cause, Msg: fmt.Sprintf("the fetch of %s was canceled by its caller", what)}
	}
	return &Error{Code: errcode.Timeout, Variable: id, Cause: cause,
		Msg: fmt.Sprintf("Conjur did not answer for %s within the fetch timeout (%s): check Conjur's load and the network, or raise CONJUR_SWARM_FETCH_TIMEOUT (below 30s)", what, timeout)}
}

// identity is the login the session authenticates as, for messages.
func (s *session) identity() string {
	if s.who != nil {
		return s.who.name
	}
	s.creds.mu.Lock()
	defer s.creds.mu.Unlock()
	if h := s.creds.handoff; h != nil && h.Login != "" {
		return h.Login
	}
	if s.creds.used.login != "" {
		return s.creds.used.login
	}
	if s.cfg.Login != "" {
		return s.cfg.Login
	}
	return "(the plugin's identity)"
}

// shortCause is a one-line cause for a user message.
func shortCause(err error) string {
	if err == nil {
		return ""
	}
	var ce *conjurError
	if asConjurError(err, &ce) {
		if m := messageOf(ce); m != "" && !strings.HasPrefix(m, fmt.Sprint(ce.Code)) {
			return fmt.Sprintf("HTTP %d: %s", ce.Code, m)
		}
		return fmt.Sprintf("HTTP %d", ce.Code)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case isTLSVerification(err):
		return "certificate not trusted: " + err.Error()
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func authnLoginPair(c credential.Credential) authn.LoginPair {
	return authn.LoginPair{Login: c.Login, APIKey: c.APIKey.Reveal()}
}

func readFull(r io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func trimSpaceBytes(b []byte) []byte { return bytes.TrimSpace(b) }
