package pluginapi

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

func TestParseHandoff(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Handoff
		wantErr string
	}{
		{
			name: "ok/api key, one URL",
			in:   `{"login":"host/swarm/conjur-plugin","api_key":"k1","account":"prod","appliance_url":"https://conjur.example.com"}`,
			want: Handoff{Credential: credential.Credential{Login: "host/swarm/conjur-plugin", APIKey: "k1", ApplianceURLs: []string{"https://conjur.example.com"}}, Account: "prod", ApplianceURLs: []string{"https://conjur.example.com"}},
		},
		{
			name: "ok/jwt, a comma list with spaces and an empty entry",
			in:   `{"jwt":"a.b.c","account":"prod","appliance_url":" https://f1.example.com, ,https://f2.example.com "}`,
			want: Handoff{Credential: credential.Credential{JWT: "a.b.c", ApplianceURLs: []string{"https://f1.example.com", "https://f2.example.com"}}, Account: "prod", ApplianceURLs: []string{"https://f1.example.com", "https://f2.example.com"}},
		},
		{name: "fail/the first release's form", in: `{"login":"host/x","api_key":"k1"}`, wantErr: `(no "account" and no "appliance_url"): write the bootstrap secret as {"login":"host/swarm/conjur-plugin","api_key":"<API key>",`},
		{name: "fail/jwt without URL", in: `{"jwt":"a.b.c","account":"prod"}`, wantErr: `(no "appliance_url"): write the bootstrap secret as {"jwt":"<JWT>",`},
		{name: "fail/account with a colon", in: `{"login":"host/x","api_key":"k1","account":"prod:host","appliance_url":"https://c.example"}`, wantErr: "give the bare account name"},
		{name: "fail/not a URL", in: `{"login":"host/x","api_key":"k1","account":"prod","appliance_url":"https://c.example,k1"}`, wantErr: "appliance_url entry 2 is not an http(s) URL"},
		{name: "fail/user info in the URL", in: `{"login":"host/x","api_key":"k1","account":"prod","appliance_url":"https://u:p@c.example"}`, wantErr: "entry 1 is not"},
		{name: "fail/account not a string", in: `{"login":"host/x","api_key":"k1","account":1,"appliance_url":"https://c.example"}`, wantErr: `field "account" must be a string`},
		{name: "fail/unknown field", in: `{"login":"host/x","api_key":"k1","account":"prod","appliance_url":"https://c.example","url":"x"}`, wantErr: "other than login, api_key, jwt, account and appliance_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHandoff([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "k1") {
					t.Errorf("the error echoes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b redact.String) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCanonicalURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://conjur.example.com":          "https://conjur.example.com",
		"HTTPS://Conjur.Example.COM:443/":     "https://conjur.example.com",
		"http://conjur.example.com:80":        "http://conjur.example.com",
		"https://conjur.example.com:8443/api": "https://conjur.example.com:8443/api",
		"https://[::1]:443":                   "https://[::1]",
		"https://[::1]:8443/":                 "https://[::1]:8443",
		"ftp://conjur.example.com":            "",
		"conjur.example.com":                  "",
		"https://":                            "",
		"https://a.example/?q=1":              "",
		"https://a.example/#f":                "",
		"https://u@a.example":                 "",
	} {
		if got := credential.CanonicalURL(in); got != want {
			t.Errorf("CanonicalURL(%q) = %q, want %q", in, got, want)
		}
	}
}
