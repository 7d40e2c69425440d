package conjurdev

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
)

// stateServer starts a TLS dev server keeping its state in dir.
func stateServer(t *testing.T, dir string) (*Server, *Listener) {
	t.Helper()
	srv, err := New(Options{Account: "dev", StateDir: dir})
	if err != nil {
		t.Fatalf("New with StateDir: %v", err)
	}
	l, err := srv.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	return srv, l
}

func stateClient(t *testing.T, l *Listener, caPEM []byte, login, key string) *conjurapi.Client {
	t.Helper()
	c, err := conjurapi.NewClientFromKey(conjurapi.Config{
		Account: "dev", ApplianceURL: l.URL, SSLCert: string(caPEM), HTTPTimeout: 10,
		CredentialStorage: conjurapi.CredentialStorageNone, Environment: conjurapi.EnvironmentOSS,
	}, authn.LoginPair{Login: login, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.GetHttpClient().CloseIdleConnections() })
	return c
}

// TestStateDir_restart rehearses "Conjur goes away and comes back": the
// second server, started on the same directory, answers the client that
// was configured against the first with the same CA, the same (rotated)
// API key and the same access token, and keeps the values and versions
// set before the restart.
func TestStateDir_restart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	srv, l := stateServer(t, dir)
	if srv.Restored() {
		t.Fatal("an empty directory was reported as restored")
	}
	if _, err := srv.LoadDemo("../../docs/examples"); err != nil {
		t.Fatal(err)
	}
	caPEM := l.CAPEM
	admin := stateClient(t, l, caPEM, "admin", srv.AdminAPIKey())
	if err := admin.AddSecret("apps/demo/db-password", "changed-before-restart"); err != nil {
		t.Fatal(err)
	}
	hostKey, err := admin.RotateHostAPIKey("swarm/conjur-plugin")
	if err != nil {
		t.Fatal(err)
	}
	plugin := stateClient(t, l, caPEM, "host/swarm/conjur-plugin", string(hostKey))
	tokenHdr := (&env{t: t, url: l.URL}).tokenHeader(plugin)
	adminKey := srv.AdminAPIKey()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	srv2, l2 := stateServer(t, dir)
	t.Cleanup(func() { _ = l2.Close() })
	if !srv2.Restored() || srv2.AdminAPIKey() != adminKey {
		t.Fatalf("restored %v, admin key kept %v", srv2.Restored(), srv2.AdminAPIKey() == adminKey)
	}
	if string(l2.CAPEM) != string(caPEM) {
		t.Fatal("the CA changed across the restart: clients would have to be given a new one")
	}
	plugin2 := stateClient(t, l2, caPEM, "host/swarm/conjur-plugin", string(hostKey))
	got, err := plugin2.RetrieveSecret("apps/demo/db-password")
	if err != nil || string(got) != "changed-before-restart" {
		t.Fatalf("after the restart: %q, %v", got, err)
	}
	v1, err := plugin2.RetrieveSecretWithVersion("apps/demo/db-password", 1)
	if err != nil || string(v1) != "demo-db-password-0001" {
		t.Fatalf("version 1 after the restart: %q, %v", v1, err)
	}
	if _, err := plugin2.RetrieveSecret("restricted/admin-password"); statusOf(err) != 404 {
		t.Fatalf("permissions after the restart: %v, want 404 for the invisible variable", err)
	}
	// A token issued before the restart is still good, as with Conjur,
	// whose token key lives in its database.
	req, _ := http.NewRequest(http.MethodGet, l2.URL+"/whoami", nil)
	req.Header.Set("Authorization", tokenHdr)
	hc := tlsClient(caPEM)
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"username":"host/swarm/conjur-plugin"`) {
		t.Fatalf("old token after the restart: %d %s", resp.StatusCode, body)
	}

	t.Run("ok/private-files", func(t *testing.T) {
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("directory mode %v, %v; want 0700", st.Mode().Perm(), err)
		}
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err == nil && info.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", p, info.Mode().Perm())
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{stateFile, caCertFile, caKeyFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	})
	t.Run("fail/another-account", func(t *testing.T) {
		_, err := New(Options{Account: "other", StateDir: dir})
		if err == nil || !strings.Contains(err.Error(), `for account "dev"`) {
			t.Fatalf("error %v, want the account named", err)
		}
	})
	t.Run("fail/another-admin-key", func(t *testing.T) {
		_, err := New(Options{Account: "dev", StateDir: dir, AdminAPIKey: "not-the-kept-one"})
		if err == nil || !strings.Contains(err.Error(), "keeps its own admin API key") {
			t.Fatalf("error %v, want the admin key conflict explained", err)
		}
	})
	t.Run("fail/damaged", func(t *testing.T) {
		bad := t.TempDir()
		if err := os.WriteFile(filepath.Join(bad, stateFile), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Options{StateDir: bad}); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("error %v, want the damaged state named", err)
		}
	})
}

func tlsClient(caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestStateDir_restrictedTo: the ranges a load gave a host are kept in the
// state directory, and a server restarted on it refuses a login from
// outside them and takes one from inside.
func TestStateDir_restrictedTo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	srv, err := New(Options{Account: "dev", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.LoadConjurPolicy(ModePost, "root", []byte("- !host {id: app, restricted_to: [10.0.0.0/8, 192.0.2.7]}\n")); err != nil {
		t.Fatal(err)
	}
	again, err := New(Options{Account: "dev", StateDir: dir})
	if err != nil || !again.Restored() {
		t.Fatalf("restart on %s: restored %v, %v", dir, again != nil && again.Restored(), err)
	}
	for ip, want := range map[string]bool{"127.0.0.1": false, "10.1.2.3": true, "192.0.2.7": true, "192.0.2.8": false} {
		if got := again.originAllowed("dev:host:app", ip); got != want {
			t.Errorf("after the restart, host app from %s: allowed %v, want %v", ip, got, want)
		}
	}
}
