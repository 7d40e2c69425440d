package credential

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestParseCredential(t *testing.T) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	tests := []struct {
		name    string
		in      string
		want    Credential
		wantErr string
	}{
		{name: "ok/api key", in: `{"login":"host/swarm/p","api_key":"3x7k"}`, want: Credential{Login: "host/swarm/p", APIKey: "3x7k"}},
		{name: "ok/trims whitespace", in: " {\"login\":\" host/a \",\"api_key\":\"k\\n\"}\n", want: Credential{Login: "host/a", APIKey: "k"}},
		{name: "ok/jwt", in: `{"jwt":"` + jwt + `"}`, want: Credential{JWT: jwt}},
		{name: "fail/not json", in: `login=host/a api_key=SECRETVALUE`, wantErr: "not valid JSON"},
		{name: "fail/truncated", in: `{"login":"host/a","api_key":"SECRETVALUE`, wantErr: "not valid JSON"},
		{name: "fail/unknown field", in: `{"login":"a","api_key":"SECRETVALUE","password":"x"}`, wantErr: "other than login"},
		{name: "fail/number", in: `{"login":"a","api_key":12345}`, wantErr: `"api_key" must be a string`},
		{name: "fail/empty object", in: `{}`, wantErr: "empty"},
		{name: "fail/key without login", in: `{"api_key":"SECRETVALUE"}`, wantErr: "no login"},
		{name: "fail/login without key", in: `{"login":"host/a"}`, wantErr: "no api_key"},
		{name: "fail/mixed", in: `{"login":"a","api_key":"SECRETVALUE","jwt":"` + jwt + `"}`, wantErr: "mixes"},
		{name: "fail/bad jwt", in: `{"jwt":"SECRETVALUE"}`, wantErr: "not a compact JWT"},
		{name: "fail/space in key", in: `{"login":"a","api_key":"SECRET VALUE"}`, wantErr: "whitespace"},
		{name: "fail/trailing data", in: `{"login":"a","api_key":"k"} {"SECRETVALUE":1}`, wantErr: "after the JSON"},
		{name: "fail/array", in: `["SECRETVALUE"]`, wantErr: "JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Fatalf("error echoes its input: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseCredential(f *testing.F) {
	for _, s := range []string{`{"login":"host/a","api_key":"k"}`, `{"jwt":"a.b.c"}`, `{}`, `[]`, `{"login":1}`, "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			const hint = `{"login":..,"api_key":..} or {"jwt":..}`
			if len(data) >= 8 && strings.Contains(err.Error(), string(data)) && !strings.Contains(hint, string(data)) {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		if c.IsZero() {
			t.Fatalf("accepted an empty credential from %q", data)
		}
		if len(c.Fingerprint()) != 16 {
			t.Fatalf("fingerprint %q", c.Fingerprint())
		}
	})
}

func TestParseCredentialFile(t *testing.T) {
	tests := []struct {
		name, in, login string
		want            Credential
		wantErr         bool
	}{
		{name: "ok/bare key uses the configured login", in: "abc123\n", login: "host/p", want: Credential{Login: "host/p", APIKey: "abc123"}},
		{name: "ok/json", in: `{"login":"host/q","api_key":"k"}`, login: "host/p", want: Credential{Login: "host/q", APIKey: "k"}},
		{name: "fail/empty", in: " \n", login: "host/p", wantErr: true},
		{name: "fail/two words", in: "abc def", login: "host/p", wantErr: true},
		{name: "fail/bare key without login", in: "abc", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFile([]byte(tt.in), tt.login)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %t", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCredentialRedacts(t *testing.T) {
	c := Credential{Login: "host/a", APIKey: "sekrit-key"}
	j := Credential{JWT: "sekrit.jwt.sig"}
	core, logs := observer.New(zapcore.DebugLevel)
	zap.New(core).Info("x", zap.Object("cred", c), zap.Any("any", j))
	raw, _ := json.Marshal(struct{ A, B Credential }{c, j})
	outs := []string{fmt.Sprint(c, j), fmt.Sprintf("%v %+v %#v %s %q %x", c, c, c, c, c, j), string(raw), fmt.Sprint(logs.All()[0].ContextMap())}
	for _, s := range outs {
		if strings.Contains(s, "sekrit") {
			t.Fatalf("credential printed its secret: %s", s)
		}
	}
	if !strings.Contains(outs[0], c.Fingerprint()) {
		t.Errorf("String() lacks the fingerprint: %s", outs[0])
	}
}

func TestFingerprint(t *testing.T) {
	a := Credential{Login: "host/a", APIKey: "k1"}
	if a.Fingerprint() != (Credential{Login: "host/a", APIKey: "k1"}).Fingerprint() {
		t.Error("fingerprint is not stable")
	}
	for _, other := range []Credential{{Login: "host/a", APIKey: "k2"}, {Login: "host/b", APIKey: "k1"}, {Login: "host/ak", APIKey: "1"}, {JWT: "k1"}} {
		if other.Fingerprint() == a.Fingerprint() {
			t.Errorf("%v and %v share a fingerprint", a, other)
		}
	}
	if (Credential{}).Fingerprint() != "" {
		t.Error("empty credential has a fingerprint")
	}
}
