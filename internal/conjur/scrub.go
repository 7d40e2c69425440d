package conjur

import (
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// maxErrorBody bounds how much of an error answer (status 300 or more) is
// read: conjurapi copies the whole body into its error, which ends up in the
// Err of an answer, the status and the log.
const maxErrorBody = 4 << 10

// scrubErrorBody replaces resp's body, for an error answer to r, by its first
// maxErrorBody bytes with every credential r carried (the Authorization
// header, the token in it, the body sent, and each value of a form body)
// replaced by [REDACTED]. A proxy or appliance in front of Conjur that echoes
// the request in its error page then cannot put the API key, the JWT or the
// access token into an error.
func scrubErrorBody(r *http.Request, resp *http.Response) *http.Response {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	text := string(body)
	for _, s := range sentSecrets(r) {
		text = strings.ReplaceAll(text, s, "[REDACTED]")
	}
	resp.Body = io.NopCloser(strings.NewReader(text))
	resp.ContentLength = int64(len(text))
	resp.Header.Del("Content-Length")
	return resp
}

// sentSecrets lists what r carried that may be a credential, longest first
// (so that a longer one is not left half replaced by a shorter one inside it).
func sentSecrets(r *http.Request) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 4 { // shorter ones are no credential, and replacing them would garble the message
			out = append(out, s)
		}
	}
	if a := r.Header.Get("Authorization"); a != "" {
		add(a)
		if _, tok, ok := strings.Cut(a, `token="`); ok {
			add(strings.TrimSuffix(tok, `"`))
		}
	}
	if r.GetBody != nil {
		if rc, err := r.GetBody(); err == nil {
			b, _ := io.ReadAll(io.LimitReader(rc, maxCredentialSize+1))
			_ = rc.Close()
			add(string(b))
			if vals, err := url.ParseQuery(string(b)); err == nil {
				for _, vs := range vals {
					for _, v := range vs {
						add(v)
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
