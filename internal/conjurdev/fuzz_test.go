package conjurdev

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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

// batchJSONTests are batch answers batchJSON writes directly and ones it
// hands to encoding/json.
var batchJSONTests = []struct {
	name   string
	values []batchValue
}{
	{"one", []batchValue{{"dev:variable:a", []byte("v")}}},
	{"sorted by id", []batchValue{{"dev:variable:b", []byte("2")}, {"dev:variable:a", []byte("1")}, {"dev:variable:A", []byte("0")}}},
	{"a value of exactly 45 bytes", []batchValue{{"dev:variable:x", []byte(strings.Repeat("k", 45))}}},
	{"a value of 46 bytes", []batchValue{{"dev:variable:x", []byte(strings.Repeat("k", 46))}}},
	{"a long value", []batchValue{{"dev:variable:x", []byte(strings.Repeat("0123456789", 40))}}},
	{"an empty value", []batchValue{{"dev:variable:x", nil}}},
	{"HTML characters", []batchValue{{"dev:variable:<a&b>", []byte("<script>&amp;</script>")}}},
	{"quote and backslash", []batchValue{{`dev:variable:q"\`, []byte(`say "hi" \ bye`)}}},
	{"control characters and newlines", []batchValue{{"dev:variable:c", []byte("line1\nline2\r\t\x00\x1f\b\f")}}},
	{"unicode", []batchValue{{"dev:variable:é", []byte("naïve \u2028 \u2029 ☃")}}},
	{"binary", []batchValue{{"dev:variable:bin", []byte{0xff, 0xfe, 0, 1, 2}}}},
}

// TestBatchJSON_sameBytesAsEncodingJSON: the batch answer written directly
// is, byte for byte, the one encoding/json writes, with and without base64.
func TestBatchJSON_sameBytesAsEncodingJSON(t *testing.T) {
	for _, tt := range batchJSONTests {
		for _, b64 := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/base64=%v", tt.name, b64), func(t *testing.T) {
				checkBatchJSON(t, tt.values, b64)
			})
		}
	}
}

func checkBatchJSON(t *testing.T, values []batchValue, b64 bool) {
	t.Helper()
	want := map[string]string{}
	for _, v := range values {
		if b64 {
			want[v.id] = rubyBase64(v.value)
		} else {
			want[v.id] = string(v.value)
		}
	}
	if got, want := string(batchJSON(slices.Clone(values), b64)), string(marshalJSON(want)); got != want {
		t.Errorf("batchJSON(base64=%v) = %q, encoding/json writes %q", b64, got, want)
	}
}

// FuzzBatchJSON: any ids and values give the bytes encoding/json writes.
// Without base64 the values are valid UTF-8 (the batch refuses others).
func FuzzBatchJSON(f *testing.F) {
	for _, tt := range batchJSONTests {
		for _, v := range tt.values {
			f.Add(v.id, v.value, "dev:variable:other", []byte("x"))
		}
	}
	f.Fuzz(func(t *testing.T, id1 string, v1 []byte, id2 string, v2 []byte) {
		values := []batchValue{{id1, v1}}
		if id2 != id1 {
			values = append(values, batchValue{id2, v2})
		}
		checkBatchJSON(t, values, true)
		if utf8.Valid(v1) && utf8.Valid(v2) {
			checkBatchJSON(t, values, false)
		}
	})
}

// tokenSubs are logins an access token is issued to: ones its claims are
// written directly for, and ones that go through encoding/json.
var tokenSubs = []string{
	"admin", "host/swarm/conjur-plugin", "host/swarm/stacks/shop", "alice@example.com",
	"", `q"uote`, `back\slash`, "<b>&amp;", "tab\there", "naïve", "\u2028", "\xff",
}

// TestTokenIssue_sameBytesAsEncodingJSON: the access token written directly
// is, byte for byte, the one json.Marshal writes, and it verifies.
func TestTokenIssue_sameBytesAsEncodingJSON(t *testing.T) {
	signer, err := newTokenSigner()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	for _, sub := range tokenSubs {
		t.Run(sub, func(t *testing.T) {
			tok := signer.issue(sub, now, 8*time.Minute)
			k := signer.key.Load()
			p, _ := json.Marshal(tokenClaims{Sub: sub, Iat: now.Unix(), Exp: now.Add(8 * time.Minute).Unix()})
			payload := tokenB64.EncodeToString(p)
			want, _ := json.Marshal(tokenJSON{Protected: k.protected, Payload: payload, Signature: sign(k, k.protected, payload)})
			if string(tok) != string(want) {
				t.Fatalf("issue(%q) = %s, json.Marshal writes %s", sub, tok, want)
			}
			if sub == "" {
				return // a token without sub is refused, as Conjur does
			}
			c, err := signer.verifyWith(k, tok, now)
			if err != nil || (utf8.ValidString(sub) && c.Sub != sub) {
				t.Errorf("verifying the token of %q: %+v, %v", sub, c, err)
			}
		})
	}
}

// FuzzTokenClaimsJSON: any claims are written as json.Marshal writes them.
func FuzzTokenClaimsJSON(f *testing.F) {
	for _, sub := range tokenSubs {
		f.Add(sub, int64(1_700_000_000), int64(1_700_000_480))
	}
	f.Add("x", int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, sub string, iat, exp int64) {
		c := tokenClaims{Sub: sub, Iat: iat, Exp: exp}
		want, _ := json.Marshal(c)
		if got := c.json(); string(got) != string(want) {
			t.Errorf("%+v.json() = %s, json.Marshal writes %s", c, got, want)
		}
	})
}

// jwtShapeRE is Conjur's JWT_REGEX as written, which jwtShaped implements.
var jwtShapeRE = regexp.MustCompile(`\A[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+\z`)

// FuzzJWTShaped: jwtShaped agrees with Conjur's regexp on any text.
func FuzzJWTShaped(f *testing.F) {
	for _, s := range []string{
		"a.b.c", "eyJh.eyJz.c2ln", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.", "a.b.c\n", "a.b.c ", "a+b.c.d",
		"a=.b-.c_", "", "..", "a.b.c/", "é.b.c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := jwtShaped(s), jwtShapeRE.MatchString(s); got != want {
			t.Errorf("jwtShaped(%q) = %v, Conjur's regexp says %v", s, got, want)
		}
	})
}
