package conjur

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Before its first use, the status says what the credential file holds:
// missing, unreadable, unusable, for another login, or ready (with the
// login and fingerprint it would use); once used, the credential in use
// (issue 23 item 6). The key never appears.
func TestStatusShowsTheCredentialFileBeforeItsFirstUse(t *testing.T) {
	const key = "file-key-7d1c40e2a9"
	tests := []struct {
		name    string
		content *string // nil: no file
		mode    os.FileMode
		want    string
	}{
		{name: "fail/missing", want: "[NO_CREDENTIAL] no Conjur credential yet: the credential file"},
		{name: "fail/empty", content: ptr(""), mode: 0o600, want: "[CREDENTIAL_REJECTED]"},
		{name: "fail/another login", content: ptr(`{"login":"host/intruder","api_key":"` + key + `"}`), mode: 0o600, want: "is for login host/intruder but this plugin is pinned to " + pluginLogin},
		{name: "ok/ready", content: ptr(key + "\n"), mode: 0o600, want: "ready, not used yet: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "credential")
			if tc.content != nil {
				if err := os.WriteFile(path, []byte(*tc.content), tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			cfg := clientConfig("", "http://127.0.0.1:1")
			cfg.CredentialFile = path
			st := newClient(t, cfg).Status()
			if !strings.Contains(st.CredentialFile, tc.want) {
				t.Fatalf("credential file state %q, want it to say %q", st.CredentialFile, tc.want)
			}
			if strings.Contains(st.CredentialFile, key) {
				t.Fatal("the state shows the key")
			}
			if tc.name == "ok/ready" {
				fp := credential.Credential{Login: pluginLogin, APIKey: redact.String(key)}.Fingerprint()
				if !strings.Contains(st.CredentialFile, fp) || !strings.Contains(st.CredentialFile, pluginLogin) {
					t.Fatalf("ready state %q does not name the login and fingerprint %s", st.CredentialFile, fp)
				}
			}
		})
	}
	t.Run("ok/used: the credential in use instead", func(t *testing.T) {
		s := newDevServer(t, conjurdev.Options{})
		path := filepath.Join(t.TempDir(), "credential")
		if err := os.WriteFile(path, []byte(s.key), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := clientConfig("", s.listen(t, false).URL)
		cfg.CredentialFile = path
		c := newClient(t, cfg)
		mustGet(t, c, varID(0))
		if st := c.Status(); st.CredentialFile != "" || st.CredentialFingerprint == "" {
			t.Fatalf("after its use: file state %q, fingerprint %q; want the fingerprint in use only", st.CredentialFile, st.CredentialFingerprint)
		}
	})
}

func ptr(s string) *string { return &s }
