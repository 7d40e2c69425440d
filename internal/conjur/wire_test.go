package conjur

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// hostile is a Conjur endpoint that authenticates anyone with a well-formed
// token and answers everything else with answer; it counts the body bytes
// it manages to write.
type hostile struct {
	srv     *httptest.Server
	written atomic.Int64
}

const hostileToken = `{"protected":"eyJhbGciOiJjb25qdXIifQ==","payload":"eyJzdWIiOiJob3N0L3N3YXJtL2Nvbmp1ci1wbHVnaW4iLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDQ4MH0=","pad":">>>???>>>???~~~>>?","signature":"c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3Qtc2hvdw=="}` // pad: its base64 holds + and /, which the URL encodings change

func newHostile(t *testing.T, authn, answer func(h *hostile, w http.ResponseWriter, r *http.Request)) *hostile {
	t.Helper()
	h := &hostile{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/authenticate") {
			if authn != nil {
				authn(h, w, r)
				return
			}
			_, _ = io.WriteString(w, hostileToken)
			return
		}
		answer(h, w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// endless writes 32 KiB chunks until the client goes away.
func endless(h *hostile, w http.ResponseWriter, r *http.Request) {
	chunk := []byte(strings.Repeat("A", 32<<10))
	for r.Context().Err() == nil {
		n, err := w.Write(chunk)
		h.written.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// roomy gives a test whose answers are megabytes a fetch timeout that only
// bounds a failure: under -race on a loaded machine reading 32 MiB or three
// values near 500 KiB took longer than the usual 2 s (seen in make test).
// The bounds are still checked by the bytes the server wrote.
func roomy(cfg Config) Config {
	cfg.FetchTimeout = 25 * time.Second
	return cfg
}

// TestEndlessBodiesAreCutAtTheirBound: an endpoint that streams without end
// makes a value Get, a batch, an authentication and a listing fail with a
// code, after the client read no more than the bound of that answer (plus
// what the sockets buffer), not after the fetch timeout or gigabytes.
func TestEndlessBodiesAreCutAtTheirBound(t *testing.T) {
	const slack = 16 << 20 // kernel socket buffers and the server's own buffers, far below what a stream reaches in a fetch timeout
	t.Run("fail/value", func(t *testing.T) {
		h := newHostile(t, nil, endless)
		c := newClient(t, roomy(clientConfig("k3y", h.srv.URL)))
		_, err := c.Get(t.Context(), Ref{ID: "apps/x"})
		if CodeOf(err) != errcode.ValueUnusable || !strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), "store a smaller one") {
			t.Fatalf("Get = %v (%s), want VALUE_UNUSABLE saying the answer is larger than its bound and what to do", err, CodeOf(err))
		}
		h.srv.Close() // waits for the handler
		t.Logf("wrote %d", h.written.Load())
		if n := h.written.Load(); n > maxValueBody+slack {
			t.Fatalf("the server wrote %d bytes before the client stopped reading; bound %d", n, maxValueBody)
		}
	})
	t.Run("fail/batch", func(t *testing.T) {
		h := newHostile(t, nil, endless)
		c := newClient(t, roomy(clientConfig("k3y", h.srv.URL)))
		_, errs := fetchAll(c, t.Context(), []Ref{{ID: "apps/x"}, {ID: "apps/y"}})
		for _, err := range errs {
			if CodeOf(err) != errcode.ValueUnusable {
				t.Fatalf("GetMany = %v (%s), want VALUE_UNUSABLE", err, CodeOf(err))
			}
		}
		h.srv.Close()
		if n := h.written.Load(); n > 2*maxValueBody*4/3+slack {
			t.Fatalf("the server wrote %d bytes before the client stopped reading", n)
		}
	})
	t.Run("fail/authentication", func(t *testing.T) {
		h := newHostile(t, endless, endless)
		c := newClient(t, roomy(clientConfig("", h.srv.URL)))
		err := c.Adopt(t.Context(), credential.Credential{Login: pluginLogin, APIKey: "k3y"})
		if CodeOf(err) != errcode.ValueUnusable || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("Adopt = %v (%s), want VALUE_UNUSABLE saying the answer is larger than its bound", err, CodeOf(err))
		}
		h.srv.Close()
		if n := h.written.Load(); n > maxAuthnBody+slack {
			t.Fatalf("the server wrote %d bytes before the client stopped reading", n)
		}
	})
	t.Run("fail/listing", func(t *testing.T) {
		h := newHostile(t, nil, endless)
		c := newClient(t, roomy(clientConfig("k3y", h.srv.URL)))
		_, err := c.sess.resources(t.Context(), nil)
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("listing = %v, want a refusal saying the answer is larger than its bound", err)
		}
		h.srv.Close()
		if n := h.written.Load(); n > maxListingBody+slack {
			t.Fatalf("the server wrote %d bytes before the client stopped reading", n)
		}
	})
}

// TestAStalledBodyEndsWithTheFetchTimeout: headers, a few bytes, then
// nothing: the fetch deadline covers the body read, and the Get ends with
// TIMEOUT (the test would hang without it).
func TestAStalledBodyEndsWithTheFetchTimeout(t *testing.T) {
	h := newHostile(t, nil, func(h *hostile, w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "abc")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	cfg := clientConfig("k3y", h.srv.URL)
	cfg.FetchTimeout = 300 * time.Millisecond
	c := newClient(t, cfg)
	if _, err := c.Get(t.Context(), Ref{ID: "apps/x"}); CodeOf(err) != errcode.Timeout {
		t.Fatalf("Get = %v (%s), want TIMEOUT", err, CodeOf(err))
	}
}

// hostileTexts are what an endpoint may put into its answers to spoof a
// terminal or reorder what an operator reads: ESC sequences, a C1 CSI,
// bidi overrides, a NUL and a newline that would forge a log line.
var hostileTexts = []string{"\x1b[2J\x1b[31mFAKE", "\u009b31m", "\u202eevil\u202c", "a\x00b", "line\nforged: yes", "\xff\xfe"}

// assertClean fails when s holds a control, C1, bidi or invalid UTF-8.
func assertClean(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s is not valid UTF-8: %q", what, s)
	}
	for _, r := range s { // written apart from netText's own test, so that a change there cannot blind this one
		bidi := r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || bidi || r == 0x2028 || r == 0x2029 || r == utf8.RuneError {
			t.Fatalf("%s carries %U from the network: %q", what, r, s)
		}
	}
}

// TestNetworkTextIsEscaped: a Conjur error body (JSON message or plain
// text), and an empty body with a hostile reason phrase, reach Err, %+v,
// the status and the log escaped.
func TestNetworkTextIsEscaped(t *testing.T) {
	for i, bad := range hostileTexts {
		for _, form := range []string{"json", "text", "reason"} {
			t.Run(fmt.Sprintf("%s/%d", form, i), func(t *testing.T) {
				h := newHostile(t, nil, func(_ *hostile, w http.ResponseWriter, _ *http.Request) {
					switch form {
					case "json":
						b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": bad, "message": "refused " + bad}})
						w.WriteHeader(http.StatusBadRequest)
						_, _ = w.Write(b)
					case "text":
						w.WriteHeader(http.StatusBadGateway)
						_, _ = io.WriteString(w, "upstream "+bad)
					case "reason": // a raw status line with a hostile reason phrase and no body
						hj, ok := w.(http.Hijacker)
						if !ok {
							t.Error("no hijacker")
							return
						}
						conn, buf, _ := hj.Hijack()
						defer conn.Close()
						_, _ = buf.WriteString("HTTP/1.1 502 " + strings.ReplaceAll(bad, "\n", " ") + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
						_ = buf.Flush()
					}
				})
				var logs strings.Builder
				log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zapcore.DebugLevel))
				c, err := New(clientConfig("k3y", h.srv.URL), log)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				_, getErr := c.Get(t.Context(), Ref{ID: "apps/x"})
				if getErr == nil {
					t.Fatal("Get succeeded")
				}
				st, _ := json.Marshal(c.Status())
				var lastErrs []string
				for _, u := range c.Status().URLs {
					lastErrs = append(lastErrs, u.LastError)
				}
				assertClean(t, "Err", getErr.Error())
				assertClean(t, "%+v", fmt.Sprintf("%+v", getErr))
				assertClean(t, "the status", string(st)+strings.Join(lastErrs, ""))
				c.Close()
				for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
					var fields map[string]any // decoded: JSON's own escaping undone
					if err := json.Unmarshal([]byte(line), &fields); err != nil {
						t.Fatalf("log line %q: %v", line, err)
					}
					for k, v := range fields {
						assertClean(t, "log field "+k, fmt.Sprint(v))
					}
				}
			})
		}
	}
}

// TestErrorPagesNeverCarryTheTokenInAnyEncoding: an error page that echoes
// the Authorization header raw, URL-encoded (query and path forms),
// base64-encoded or JSON-escaped puts no part of the access token into Err,
// the status or the log.
func TestErrorPagesNeverCarryTheTokenInAnyEncoding(t *testing.T) {
	encodings := map[string]func(string) string{
		"raw":   func(s string) string { return s },
		"query": url.QueryEscape,
		"query-lower": func(s string) string {
			return regexp.MustCompile(`%[0-9A-F]{2}`).ReplaceAllStringFunc(url.QueryEscape(s), strings.ToLower)
		},
		"path":               url.PathEscape,
		"base64":             func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"base64url":          func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) },
		"json":               func(s string) string { b, _ := json.Marshal(s); return string(b) },
		"json-quoted":        func(s string) string { return strconv.Quote(s) },
		"token-decoded":      decodedToken, // the access token itself, as a page that decodes the header shows it
		"token-decoded-json": func(s string) string { b, _ := json.Marshal(decodedToken(s)); return string(b) },
	}
	tokenB64 := base64.StdEncoding.EncodeToString([]byte(hostileToken))
	for name, enc := range encodings {
		for _, status := range []int{http.StatusBadRequest, http.StatusBadGateway} {
			t.Run(fmt.Sprintf("%s/%d", name, status), func(t *testing.T) {
				var sent atomic.Value
				h := newHostile(t, nil, func(_ *hostile, w http.ResponseWriter, r *http.Request) {
					sent.Store(r.Header.Get("Authorization"))
					w.WriteHeader(status)
					fmt.Fprintf(w, "denied; your request had Authorization=%s", enc(r.Header.Get("Authorization")))
				})
				var logs strings.Builder
				log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zapcore.DebugLevel))
				c, err := New(clientConfig("k3y-3x7k-echo", h.srv.URL), log)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				_, getErr := c.Get(t.Context(), Ref{ID: "apps/x"})
				st, _ := json.Marshal(c.Status())
				c.Close()
				header, _ := sent.Load().(string)
				if !strings.Contains(header, tokenB64) {
					t.Fatalf("the request carried Authorization %q, not the token", header)
				}
				if !strings.ContainsAny(tokenB64, "+/") {
					t.Fatal("the token's base64 has no + or /: the URL encodings would not differ from the raw form")
				}
				pieces := []string{"c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3Qtc2hvdw"}
				for e, i := enc(header), 20; i+24 <= len(e); i += 8 { // every stretch of the echo past the header's start
					pieces = append(pieces, e[i:i+24])
				}
				for _, s := range []string{fmt.Sprintf("%v", getErr), fmt.Sprintf("%+v", getErr), string(st), logs.String()} {
					for _, piece := range pieces {
						if strings.Contains(s, piece) {
							t.Fatalf("a piece of the access token (%s form) reached an error, the status or the log: %.400s", name, s)
						}
					}
				}
			})
		}
	}
}

// FuzzNetText: whatever the network sends, the text that enters an error
// is valid UTF-8 without a control, C1 or bidi character, bounded, and
// plain printable text passes unchanged.
func FuzzNetText(f *testing.F) {
	for _, s := range append(hostileTexts, "", "CONJ00076E Variable dev:variable:apps/x is empty or not found.", strings.Repeat("é", 300)) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := netText(in)
		assertClean(t, "netText", out)
		if len(out) > maxNetText+len("...") {
			t.Fatalf("netText is %d bytes, bound %d", len(out), maxNetText)
		}
		plain := len(in) <= maxNetText && strings.IndexFunc(in, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) }) < 0
		if plain && out != in {
			t.Fatalf("printable text changed: %q -> %q", in, out)
		}
	})
}

// TestLargeValuesWithinTheBoundArrive: values just under Swarm's limit
// arrive whole, alone and three in one batch (the bound of a batch grows
// with its variables).
func TestLargeValuesWithinTheBoundArrive(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	c := newClient(t, roomy(clientConfig(s.key, s.listen(t, false).URL)))
	var refs []Ref
	for i := range 3 {
		v := bytes.Repeat([]byte{byte(0x80 + i), 0x00, 0xff}, (maxSecretValue-1024)/3)
		if err := s.SetSecret(varID(i), v); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, Ref{ID: varID(i), NoCache: true})
	}
	if v := mustGet(t, c, varID(0)); len(v.Data) != (maxSecretValue-1024)/3*3 {
		t.Fatalf("single value of %d bytes", len(v.Data))
	}
	vals, errs := fetchAll(c, t.Context(), refs)
	for i := range refs {
		if errs[i] != nil || len(vals[i].Data) != (maxSecretValue-1024)/3*3 {
			t.Fatalf("batch member %d: %d bytes, %v", i, len(vals[i].Data), errs[i])
		}
	}
	if n := s.Count(conjurdev.EpBatch); n != 1 {
		t.Fatalf("%d batch requests, want the three values in one", n)
	}
}

// TestTLSErrorTextIsEscaped: a certificate whose names hold an ESC sequence
// and a bell (Conjur's address taken by an impostor): the TLS
// error that names them reaches Err and the status escaped.
func TestTLSErrorTextIsEscaped(t *testing.T) {
	ca := newTestCAFor(t, []string{"\x1b[2Jconjur\x07evil"}, nil) // a DNS name is ASCII: ESC and BEL are all it can hold
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cfg := clientConfig("k3y", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)) // a name: the error lists the certificate's names
	cfg.AllowHTTP, cfg.CACertPEM = false, ca.pem
	c := newClient(t, cfg)
	_, err := c.Get(t.Context(), Ref{ID: "apps/x"})
	if CodeOf(err) != errcode.TLS {
		t.Fatalf("Get = %v (%s), want TLS", err, CodeOf(err))
	}
	st, _ := json.Marshal(c.Status())
	var lastErrs []string
	for _, u := range c.Status().URLs {
		lastErrs = append(lastErrs, u.LastError)
	}
	assertClean(t, "Err", err.Error())
	assertClean(t, "%+v", fmt.Sprintf("%+v", err))
	assertClean(t, "the status", string(st)+strings.Join(lastErrs, ""))
	if !strings.Contains(err.Error(), `\x1b[2Jconjur\x07evil`) {
		t.Fatalf("Err %q does not show the certificate's name escaped", err)
	}
}

// TestNetTextEscapes: what each kind of unsafe character becomes.
func TestNetTextEscapes(t *testing.T) {
	for in, want := range map[string]string{
		"plain text: ok (200)": "plain text: ok (200)",
		"\x1b[31m":             `\x1b[31m`,
		"a\nb":                 `a\x0ab`,
		"\u009b":               `\u009b`,
		"\u202eevil":           `\u202eevil`,
		"\xff\xfe":             `\xff\xfe`,
		"caf\u00e9":            "caf\u00e9",
	} {
		if got := netText(in); got != want {
			t.Errorf("netText(%q) = %q, want %q", in, got, want)
		}
	}
}

// decodedToken is the access token an Authorization header carries.
func decodedToken(header string) string {
	_, tok, _ := strings.Cut(header, `token="`)
	b, _ := base64.StdEncoding.DecodeString(strings.TrimSuffix(tok, `"`))
	return string(b)
}
