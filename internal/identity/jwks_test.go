package identity

import (
	"encoding/json"
	"strings"
	"testing"
)

func jwksJSON(t testing.TB, s *Store) []byte {
	t.Helper()
	b, err := json.Marshal(s.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMerge_combinesManagersIntoOnePublicKeysValue(t *testing.T) {
	m1, m2 := openFresh(t), openFresh(t)
	if _, err := m2.PrepareNext(); err != nil {
		t.Fatal(err)
	}
	pk, err := Merge([]Input{{"m1.json", jwksJSON(t, m1)}, {"m2.json", jwksJSON(t, m2)}, {"m1-again.json", jwksJSON(t, m1)}})
	if err != nil {
		t.Fatal(err)
	}
	want := m1.Current().ID + "," + m2.Current().ID + "," + m2.Next().ID
	if pk.Type != "jwks" || kids(pk.Value) != want {
		t.Fatalf("merged %s %s, want jwks %s (a key listed twice kept once)", pk.Type, kids(pk.Value), want)
	}
	// The current public-keys value merges too (adding a manager).
	prev, _ := json.Marshal(pk)
	m3 := openFresh(t)
	pk2, err := Merge([]Input{{"public-keys.json", prev}, {"m3.json", jwksJSON(t, m3)}})
	if err != nil {
		t.Fatal(err)
	}
	if kids(pk2.Value) != want+","+m3.Current().ID {
		t.Fatalf("merging the current value and m3 gave %s", kids(pk2.Value))
	}
}

func TestMerge_refusesBadInputNamingTheFile(t *testing.T) {
	m1 := openFresh(t)
	good := string(jwksJSON(t, m1))
	var j JWKS
	_ = json.Unmarshal([]byte(good), &j)
	k := j.Keys[0]
	variant := func(f func(*JWK)) string {
		c := k
		f(&c)
		b, _ := json.Marshal(JWKS{Keys: []JWK{c}})
		return string(b)
	}
	tests := []struct {
		name   string
		inputs []Input
		want   string
	}{
		{"no-files", nil, "no JWKS files"},
		{"not-json", []Input{{"a.json", []byte("nope")}}, "a.json: not a JWKS"},
		{"two-documents", []Input{{"a.json", []byte(good + good)}}, "a.json: text after the JSON"},
		{"no-keys", []Input{{"a.json", []byte(`{"keys":[]}`)}}, "a.json: no keys"},
		{"empty-object", []Input{{"a.json", []byte(`{}`)}}, "a.json: no keys"},
		{"wrong-type", []Input{{"a.json", []byte(`{"type":"pem","value":{}}`)}}, `must be {"type":"jwks"`},
		{"ec-key", []Input{{"a.json", []byte(variant(func(c *JWK) { c.Kty = "EC" }))}}, `kty "EC"`},
		{"no-kid", []Input{{"a.json", []byte(variant(func(c *JWK) { c.Kid = "" }))}}, "no kid"},
		{"other-alg", []Input{{"a.json", []byte(variant(func(c *JWK) { c.Alg = "ES256" }))}}, `alg "ES256"`},
		{"bad-base64", []Input{{"a.json", []byte(variant(func(c *JWK) { c.N = "!!" }))}}, "base64url"},
		{"small-modulus", []Input{{"a.json", []byte(variant(func(c *JWK) { c.N = "AQAB" }))}}, "17-bit modulus"},
		{"duplicate-kid-other-key", []Input{{"a.json", []byte(good)}, {"b.json", []byte(variant(func(c *JWK) { c.N = flip(c.N) }))}}, `b.json: key id "` + k.Kid + `" is also in a.json with a different key`},
		{"private-key", []Input{{"a.json", []byte(strings.Replace(good, `"kid"`, `"d":"c2VjcmV0","kid"`, 1))}}, `holds a private key ("d")`},
		{"too-big", []Input{{"a.json", make([]byte, MaxInput+1)}}, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Merge(tt.inputs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Merge = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// FuzzMerge: any input either merges into a value every key of which
// passes the checks, or fails with an error naming the file; never panics.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"type":"jwks","value":{"keys":[]}}`))
	f.Add([]byte(`{"type":"jwks"}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pk, err := Merge([]Input{{"in.json", data}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "in.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if pk.Type != "jwks" || len(pk.Value.Keys) == 0 {
			t.Fatalf("merged %+v", pk)
		}
		for _, k := range pk.Value.Keys {
			if err := checkJWK(k); err != nil {
				t.Fatalf("merged a key that fails its checks: %v", err)
			}
		}
	})
}

// flip changes a base64url string's first character.
func flip(s string) string {
	if s[0] == 'x' {
		return "y" + s[1:]
	}
	return "x" + s[1:]
}
