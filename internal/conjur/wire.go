package conjur

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Everything this package reads from the network enters through ctxTransport:
// each answer's body is bounded by what that answer can legitimately hold,
// an error answer is cut to a short excerpt with every credential the
// request carried scrubbed out, and every text from the network (an error
// body, a status line, a transport or TLS error, the proxy's answer) is
// escaped by netText before it can reach an error, the status or the log.

// Bounds on an answer's body, and on its headers.
const (
	maxSecretValue = 500 << 10                      // Swarm takes a secret value under 500 KiB
	maxValueBody   = maxSecretValue + 1<<10         // one value: what Swarm can take and a little more, so that the driver can say the value is too large
	maxAuthnBody   = 64 << 10                       // an access token is about 1 KiB
	maxListingBody = 32 << 20                       // one page of a resource listing (ResourcePageSize resources with their version lists)
	maxOtherBody   = 1 << 20                        // anything else
	maxHeaderBytes = 64 << 10                       // an answer's headers, the proxy's CONNECT answer included
	maxBatchFrame  = 16                             // per variable in a batch answer: quotes, colon, comma
	base64Size     = (maxValueBody+2)/3*4*31/30 + 2 // a value in a batch answer is base64 as Conjur's Ruby writes it: a newline (JSON: \n) every 60 characters
)

// ctxTransport sends every request of one call with the call's context
// (whose deadline then covers the body read too) and bounds, scrubs and
// escapes what comes back.
type ctxTransport struct {
	ctx   context.Context
	rt    http.RoundTripper
	proxy string // CONJUR_SWARM_PROXY, when set
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, tunnel := t.ctx, (*tunnelStage)(nil)
	if t.proxy != "" {
		ctx, tunnel = withTunnelStage(ctx)
	}
	resp, err := t.rt.RoundTrip(r.WithContext(ctx))
	if err != nil {
		if tunnel != nil {
			err = proxyFailure(tunnel, t.proxy, err)
		}
		return nil, fromNetwork(err)
	}
	if resp.StatusCode >= 300 {
		return scrubErrorBody(r, resp), nil
	}
	resp.Body = &boundedBody{rc: resp.Body, left: bodyLimit(r), req: r}
	return resp, nil
}

// bodyLimit is the most the answer to r can hold.
func bodyLimit(r *http.Request) int64 {
	switch {
	case strings.HasSuffix(r.URL.Path, "/authenticate"):
		return maxAuthnBody
	case isBatch(r):
		var n int64
		for id := range strings.SplitSeq(r.URL.Query().Get("variable_ids"), ",") {
			n += base64Size + int64(6*len(id)) + maxBatchFrame // an id may come back \u-escaped
		}
		return n
	case strings.Contains(r.URL.Path, "/secrets/"):
		return maxValueBody
	case strings.Contains(r.URL.Path, "/resources/"):
		return maxListingBody
	}
	return maxOtherBody
}

// isBatch reports a batch request (GET /secrets?variable_ids=...), without
// parsing the query of the others.
func isBatch(r *http.Request) bool {
	return strings.Contains(r.URL.RawQuery, "variable_ids=") && r.URL.Query().Has("variable_ids")
}

// answerName says what the answer to r is, for an error.
func answerName(r *http.Request) string {
	switch {
	case strings.HasSuffix(r.URL.Path, "/authenticate"):
		return "the answer to authentication"
	case isBatch(r):
		return fmt.Sprintf("the batch answer for %d variables", strings.Count(r.URL.Query().Get("variable_ids"), ",")+1)
	case strings.Contains(r.URL.Path, "/secrets/"):
		return "the value"
	case strings.Contains(r.URL.Path, "/resources/"):
		return "the resource listing"
	}
	return "the answer"
}

// boundedBody reads at most left bytes, and fails with tooLarge when the
// answer holds more.
type boundedBody struct {
	rc   io.ReadCloser
	left int64
	req  *http.Request // what the answer answers, named in the error
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte // at the bound: the answer may end here, or hold more
		n, err := b.rc.Read(one[:])
		if n > 0 {
			r := b.req
			return 0, &tooLargeError{what: answerName(r), url: r.URL.Scheme + "://" + r.URL.Host, limit: bodyLimit(r)}
		}
		return 0, fromNetwork(err)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, fromNetwork(err)
}

func (b *boundedBody) Close() error { return b.rc.Close() }

// tooLargeError: an answer held more than any legitimate one can.
type tooLargeError struct {
	what  string
	url   string
	limit int64
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s from %s is larger than %d KiB", e.what, e.url, e.limit>>10)
}

// fromNetwork is the one constructor of errors that come from the network:
// its text is escaped by netText; the error itself stays in the chain
// (errors.Is and errors.As see it). io.EOF and nil pass unchanged.
func fromNetwork(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var ne *netError
	if errors.As(err, &ne) {
		return err
	}
	return &netError{err: err}
}

// netError is an error from the network with its text escaped.
type netError struct{ err error }

func (e *netError) Error() string { return netText(e.err.Error()) }
func (e *netError) Unwrap() error { return e.err }

// Timeout and Temporary make a netError the net.Error it wraps, for
// net/http's and this package's checks.
func (e *netError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.err, &t) && t.Timeout()
}
func (e *netError) Temporary() bool { return false }

// maxNetText bounds a text from the network in an error: a short excerpt.
const maxNetText = 300

// netText is s as it may enter an error: valid UTF-8 without control (C0,
// DEL, C1), format (bidi overrides, zero-width) or line-separator
// characters, each written as a \x or \u escape instead, and at most
// maxNetText bytes (then "...").
func netText(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean && len(s) <= maxNetText {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		piece := string(r)
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			piece = fmt.Sprintf(`\x%02x`, s[i])
		case r < utf8.RuneSelf && unsafeRune(r):
			piece = fmt.Sprintf(`\x%02x`, r)
		case unsafeRune(r):
			piece = fmt.Sprintf(`\u%04x`, r)
		}
		if b.Len()+len(piece) > maxNetText {
			b.WriteString("...")
			break
		}
		b.WriteString(piece)
	}
	return b.String()
}

// unsafeRune reports a character that can move a terminal's cursor, change
// its colours, reorder the text around it or hide itself.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || r == utf8.RuneError
}

// maxErrorBody bounds how much of an error answer (status 300 or more) is
// read.
const maxErrorBody = 4 << 10

// scrubErrorBody replaces the body of resp, an error answer to r, by a
// short excerpt: Conjur's error message (or the start of a non-Conjur
// page), with every credential r carried scrubbed out in each form an echo
// may take (raw, URL-encoded, base64, JSON-escaped), then escaped and cut by
// netText; and the status line by Go's own text for the code. A proxy or
// appliance in front of Conjur that echoes the request in its error page
// then cannot put the API key, the JWT or the access token into an error,
// nor control characters into a terminal.
func scrubErrorBody(r *http.Request, resp *http.Response) *http.Response {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	secrets := sentSecrets(r)
	text := scrub(string(body), secrets)
	var doc struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	msg, code := text, ""
	if json.Unmarshal([]byte(text), &doc) == nil && doc.Error.Message != "" {
		msg, code = scrub(doc.Error.Message, secrets), scrub(doc.Error.Code, secrets)
	}
	out := []byte{}
	if msg = netText(strings.TrimSpace(msg)); msg != "" {
		out, _ = json.Marshal(map[string]map[string]string{"error": {"code": netText(code), "message": msg}})
	}
	resp.Body = io.NopCloser(strings.NewReader(string(out)))
	resp.ContentLength = int64(len(out))
	resp.Header.Del("Content-Length")
	resp.Status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	return resp
}
