package bootstrap

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// TestAgentLoginCheck: which plugin statuses get the credential, by the
// login the plugin reports. An API key goes only to a plugin pinned to its
// login; a plugin that reports no login is not a match (it would take the
// key for whatever identity it authenticates as). A JWT names no login: it
// goes to a plugin of its Conjur whatever login it reports, since the plugin
// holds the JWT to its own pinned login when it authenticates.
func TestAgentLoginCheck(t *testing.T) {
	const jwtCred = `{"jwt":"aGVhZGVy.cGF5bG9hZA.c2ln","account":"` + prodAccount + `","appliance_url":"` + prodURL + `"}`
	cases := []struct {
		name   string
		cred   string
		login  string // reported by the plugin; "-" for no login field at all
		handed bool
	}{
		{"fail/api key to a plugin reporting an empty login", prodCred, "", false},
		{"fail/api key to a plugin reporting no login field", prodCred, "-", false},
		{"fail/api key to a plugin of another login", prodCred, "host/swarm/other", false},
		{"ok/api key to its login", prodCred, prodLogin, true},
		{"ok/jwt to a plugin pinned to a login", jwtCred, prodLogin, true},
		{"ok/jwt to a plugin reporting an empty login", jwtCred, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := pluginapi.ParseHandoff([]byte(tc.cred))
			if err != nil {
				t.Fatal(err)
			}
			login := fmt.Sprintf(`"login":%q,`, tc.login)
			if tc.login == "-" {
				login = ""
			}
			status := `{"configured":true,"conjur":{` + login + `"account":"` + prodAccount + `","credential_source":"none","urls":[{"url":"` + prodURL + `"}]}}`
			plugins := t.TempDir()
			sock := filepath.Join(plugins, "aaaa", pluginapi.SocketName)
			fake := serveFakeSocket(t, sock, status, `{"ok":true,"fingerprint":"`+h.Credential.Fingerprint()+`"}`)
			a, logs := newTrustAgent(t, plugins, tc.cred)

			res := a.Pass(context.Background())
			got := len(fake.Handoffs())
			switch {
			case tc.handed && (got != 1 || len(res.HandedTo) != 1):
				t.Fatalf("the plugin got the credential %d times (result %+v); want it handed over once", got, res)
			case !tc.handed && got != 0:
				t.Fatalf("the plugin got the credential %d times; want never", got)
			case !tc.handed && res.Skipped[sock] == "":
				t.Fatalf("result %+v: want the socket skipped with a reason", res)
			}
			assertNoKeyLogged(t, logs, prodKey)
		})
	}
}
