package conjur

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cyberark/conjur-swarm/internal/credential"
)

// scrub replaces every form of each secret in text by [REDACTED].
func scrub(text string, secrets []string) string {
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, "[REDACTED]")
	}
	return text
}

// sentSecrets lists what r carried that may be a credential (the
// Authorization header, the token in it and that token decoded, the body
// sent, each value of a form body or of a JSON object body, and a SigV4
// signature in one), each in every form an error page
// may echo it: raw, URL-encoded (query and path forms, either case of hex),
// base64 (standard and URL alphabets, padded or not) and JSON- or
// Go-escaped; longest first, so that a longer one is not left half replaced
// by a shorter one inside it.
func sentSecrets(r *http.Request) []string {
	var raw []string
	add := func(s string) {
		if len(s) >= 4 { // shorter ones are no credential, and replacing them would garble the message
			raw = append(raw, s)
		}
	}
	if a := r.Header.Get("Authorization"); a != "" {
		add(a)
		if _, tok, ok := strings.Cut(a, `token="`); ok {
			tok = strings.TrimSuffix(tok, `"`)
			add(tok)
			if dec, err := base64.StdEncoding.DecodeString(tok); err == nil {
				add(string(dec))
			}
		}
	}
	if r.GetBody != nil {
		if rc, err := r.GetBody(); err == nil {
			b, _ := io.ReadAll(io.LimitReader(rc, credential.MaxSize+1))
			_ = rc.Close()
			add(string(b))
			if vals, err := url.ParseQuery(string(b)); err == nil {
				for _, vs := range vals {
					for _, v := range vs {
						add(v)
					}
				}
			}
			var fields map[string]any // authn-iam's body: the signed headers as JSON
			if json.Unmarshal(b, &fields) == nil {
				for _, v := range fields {
					if s, ok := v.(string); ok {
						add(s)
						if _, sig, ok := strings.Cut(s, "Signature="); ok {
							add(sig)
						}
					}
				}
			}
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range raw {
		for _, form := range forms(s) {
			if len(form) >= 4 && !seen[form] {
				seen[form] = true
				out = append(out, form)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

var percentHex = regexp.MustCompile(`%[0-9A-F]{2}`)

// forms is s in every encoding an echo may use.
func forms(s string) []string {
	q, p := url.QueryEscape(s), url.PathEscape(s)
	j, _ := json.Marshal(s)
	b := []byte(s)
	return []string{
		s, q, p, percentHex.ReplaceAllStringFunc(q, strings.ToLower), percentHex.ReplaceAllStringFunc(p, strings.ToLower),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		strings.Trim(string(j), `"`), strings.Trim(strconv.Quote(s), `"`),
	}
}
