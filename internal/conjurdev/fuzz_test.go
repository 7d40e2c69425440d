package conjurdev

import (
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzParseConjurPolicy checks that no policy document panics the parser or the
// loader, that a document that is not YAML answers Conjur's bare 500, and
// that one the parser accepts either loads or is refused with a Conjur
// error (never a 500).
func FuzzParseConjurPolicy(f *testing.F) {
	for _, tt := range policyErrorTests {
		f.Add(tt.body)
	}
	for _, tt := range policyLoadErrorBodies {
		f.Add(tt.body)
	}
	f.Add("- !host {id: h, restricted_to: [10.0.0.0/8, 10.0.0.1/24]}\n")
	for _, b := range emptyPolicies {
		f.Add(b)
	}
	if demo, err := os.ReadFile("../../docs/examples/conjur-policy.yml"); err == nil {
		f.Add(string(demo))
	}
	f.Add(jwtPolicy)
	f.Add("- &a [!variable x, *a]\n")
	f.Add("- !policy {id: p, body: [!user u, !grant {role: !group g, member: !user u}, !group g]}\n")
	f.Fuzz(func(t *testing.T, body string) {
		stmts, perr := parseConjurPolicy([]byte(body))
		srv, err := New(Options{AdminAPIKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		_, lerr := srv.LoadConjurPolicy(ModePatch, "root", []byte(body))
		if perr != nil {
			var pe *conjurPolicyError
			var ys *yamlSyntaxError
			if errors.As(perr, &ys) {
				var se *StatusError
				if !errors.As(lerr, &se) || se.Status != 500 || !se.yamlSyntax {
					t.Fatalf("YAML syntax error %v: load answered %v, want Conjur's bare 500", perr, lerr)
				}
				return
			}
			if !errors.As(perr, &pe) {
				t.Fatalf("parse error of type %T: %v", perr, perr)
			}
			if lerr == nil {
				t.Fatalf("the parser refused (%v) but the load succeeded", perr)
			}
			return
		}
		_ = stmts
		if lerr != nil {
			var se *StatusError
			if !errors.As(lerr, &se) || se.Status >= 500 {
				t.Fatalf("load error %v (%T), want a 4xx StatusError", lerr, lerr)
			}
			return
		}
		// Loading the same document again with PUT must succeed too.
		if _, err := srv.LoadConjurPolicy(ModePut, "root", []byte(body)); err != nil {
			t.Fatalf("PUT of a document PATCH accepted: %v", err)
		}
	})
}

// tokenHeaderSeeds are Authorization headers from TestTokenErrors.
var tokenHeaderSeeds = []string{
	"", "Bearer abc", `Token token="%%%"`,
	`Token token="` + base64.StdEncoding.EncodeToString([]byte("nope")) + `"`,
	`Token token="` + base64.StdEncoding.EncodeToString([]byte(`{"protected":"a","payload":"b","signature":"c"}`)) + `"`,
	`Token token="`,
}

// FuzzParseAuthorization checks that token parsing never panics, answers
// only the three token errors, and accepts nothing it did not sign.
func FuzzParseAuthorization(f *testing.F) {
	signer, err := newTokenSigner()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	valid := `Token token="` + base64.StdEncoding.EncodeToString(signer.issue("host/x", now, time.Minute)) + `"`
	for _, s := range append(tokenHeaderSeeds, valid) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		c, err := signer.parseAuthorization(header, now)
		switch {
		case err == nil:
			if c.Sub == "" || c.Exp <= now.Unix() {
				t.Fatalf("accepted claims %+v", c)
			}
			// Only tokens this signer issued verify; the fuzzer cannot
			// forge an HMAC, so an accepted header carries a signed token.
			raw, _ := tokenFromHeader(header)
			if !strings.Contains(string(raw), `"signature"`) {
				t.Fatalf("accepted %q", header)
			}
		case errors.Is(err, errAuthMissing), errors.Is(err, errTokenMalformed), errors.Is(err, errTokenInvalid):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// FuzzParseValues checks the values file parser never panics and never
// echoes a value in its error.
func FuzzParseValues(f *testing.F) {
	f.Add("a: b\n")
	f.Add("apps/x: \"base64:AAEC\"\n")
	f.Add("apps/x: \"base64:!!!SECRETVALUE\"\n")
	f.Add("- list\n")
	f.Fuzz(func(t *testing.T, doc string) {
		_, err := ParseValues([]byte(doc))
		if err != nil && strings.Contains(doc, "SECRETVALUE") && strings.Contains(err.Error(), "SECRETVALUE") {
			t.Fatalf("error echoes a value: %v", err)
		}
	})
}
