package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/pluginapi/pluginapitest"
)

// TestBootstrapAgentOnce: one pass against a plugin under a plugins
// directory laid out like /run/docker/plugins/<id>/conjur.sock. The plugin
// has no Conjur settings, so the agent does not hand the credential over and
// says why; the key never reaches the output.
func TestBootstrapAgentOnce(t *testing.T) {
	clearEnv(t)
	plugins := t.TempDir()
	sock := filepath.Join(plugins, "abc123", "conjur.sock")
	stop := startQuietPlugin(t, sock)
	defer stop()
	secret := filepath.Join(t.TempDir(), "conjur-bootstrap")
	writeSecret(t, secret, `{"login":"host/swarm/conjur-plugin","api_key":"key-eeee-5555","account":"myorg","appliance_url":"https://conjur.example.com"}`)

	stdout, stderr, code := execCLI("bootstrap-agent", "--once", "--secret-file", secret, "--plugins-dir", plugins, "--log-level", "error")
	if code != 1 || !strings.Contains(stderr, sock+": plugin not configured") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "key-eeee-5555") {
		t.Error("the key appears in the output")
	}

	_, stderr, code = execCLI("bootstrap-agent", "--once", "--secret-file", secret, "--plugins-dir", t.TempDir(), "--log-level", "error")
	if code != 1 || !strings.Contains(stderr, "no conjur-swarm plugin socket under") || !strings.Contains(stderr, "not every plugin holds the credential") {
		t.Errorf("no plugin: exit %d %s", code, stderr)
	}
}

// TestBootstrapAgentRefusesACredentialThatDoesNotSayWhereItBelongs: the
// first release's {"login":...,"api_key":...} is refused with the document
// to write instead, before any socket is asked anything.
func TestBootstrapAgentRefusesACredentialThatDoesNotSayWhereItBelongs(t *testing.T) {
	clearEnv(t)
	plugins := t.TempDir()
	fake := serveFakePluginSocket(t, filepath.Join(plugins, "abc123", "conjur.sock"), `{"configured":true}`)
	secret := filepath.Join(t.TempDir(), "conjur-bootstrap")
	writeSecret(t, secret, `{"login":"host/swarm/conjur-plugin","api_key":"key-ffff-6666"}`)

	stdout, stderr, code := execCLI("bootstrap-agent", "--once", "--secret-file", secret, "--plugins-dir", plugins, "--log-level", "error")
	want := `no "account" and no "appliance_url"): write the bootstrap secret as {"login":"host/swarm/conjur-plugin","api_key":"<API key>","account":"<CONJUR_ACCOUNT>","appliance_url":"<CONJUR_APPLIANCE_URL>"}`
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d\nstdout %s\nstderr %s\nwant %s", code, stdout, stderr, want)
	}
	if strings.Contains(stdout+stderr, "key-ffff-6666") {
		t.Error("the key appears in the output")
	}
	if n := fake.Calls(); n != 0 {
		t.Errorf("the agent called a socket %d times with a credential it cannot use", n)
	}
}

// TestBootstrapAgentHandsOnlyToThePluginOfItsConjur runs the real `serve`
// twice on one node, pinned to the same conventional login: one for the
// production Conjur, one for a staging Conjur (another account and URL),
// each a Conjur-compatible dev server over TLS. A socket that answers a
// status without a Conjur section sorts before both. `bootstrap-agent
// --once` with the production credential must hand it to the production
// plugin only, count the staging plugin and the odd socket as skipped (exit
// 0), and the staging Conjur must never see an authentication. Handed to the
// staging plugin directly, the production credential is refused
// CREDENTIAL_REJECTED before the plugin contacts its Conjur.
func TestBootstrapAgentHandsOnlyToThePluginOfItsConjur(t *testing.T) {
	clearEnv(t)
	plugins := t.TempDir()
	prod := startDevConjurFor(t, "prod")
	staging := startDevConjurFor(t, "staging")
	prodSock := filepath.Join(plugins, "bbbb", "conjur.sock")
	stagingSock := filepath.Join(plugins, "aaaa", "conjur.sock")
	odd := serveFakePluginSocket(t, filepath.Join(plugins, "0000", "conjur.sock"), `{"configured":true}`)
	defer startPluginFor(t, prodSock, prod)()
	defer startPluginFor(t, stagingSock, staging)()

	secret := filepath.Join(t.TempDir(), "conjur-bootstrap")
	writeSecret(t, secret, prod.handoff())
	stdout, stderr, code := execCLI("bootstrap-agent", "--once", "--secret-file", secret, "--plugins-dir", plugins, "--log-level", "error")
	if code != 0 || !strings.Contains(stdout, "credential handed to 1 plugin(s), already held by 0: "+prodSock) {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	for _, want := range []string{
		stagingSock + `: skipped, the credential is not for this plugin: the plugin is set for Conjur account "staging", the credential for account "prod"`,
		filepath.Join(plugins, "0000", "conjur.sock") + ": skipped, the credential is not for this plugin: the plugin's status has no Conjur section",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if len(odd.Handoffs()) != 0 {
		t.Error("the socket without a Conjur section received the credential")
	}
	if n := staging.dev.Count(conjurdev.EpAuthn); n != 0 {
		t.Errorf("the staging Conjur saw %d authentications; the production key must never reach it", n)
	}
	prodStatus := statusOf(t, prodSock)
	if prodStatus.Conjur == nil || prodStatus.Conjur.CredentialSource != "handoff" {
		t.Errorf("production plugin status %+v: want the handed-over credential", prodStatus.Conjur)
	}
	if st := statusOf(t, stagingSock); st.Conjur == nil || st.Conjur.HasCredential() {
		t.Errorf("staging plugin status %+v: want no credential", st.Conjur)
	}

	// The plugin's own check, for a sender that does not check.
	ans, err := pluginapi.NewClient(stagingSock, 10*time.Second).Bootstrap(context.Background(), []byte(prod.handoff()))
	if err != nil || ans.OK || !strings.Contains(ans.Err, "[CREDENTIAL_REJECTED]") || !strings.Contains(ans.Err, "belongs to another Conjur") {
		t.Errorf("staging plugin handed the production credential: %+v %v", ans, err)
	}
	if n := staging.dev.Count(conjurdev.EpAuthn); n != 0 {
		t.Errorf("the staging plugin sent the production key to its Conjur (%d authentications)", n)
	}
	if strings.Contains(stdout+stderr+ans.Err, prod.key) {
		t.Error("the key appears in the output")
	}
}

// devConjur is a Conjur-compatible dev server loaded with the demo policy,
// listening over TLS.
type devConjur struct {
	dev          *conjurdev.Server
	account, url string
	ca           []byte
	key          string // the API key of host/swarm/conjur-plugin
}

func (d devConjur) handoff() string {
	return fmt.Sprintf(`{"login":%q,"api_key":%q,"account":%q,"appliance_url":%q}`, devPluginLogin, d.key, d.account, d.url)
}

func startDevConjurFor(t *testing.T, account string) devConjur {
	t.Helper()
	dev, err := conjurdev.New(conjurdev.Options{Account: account})
	if err != nil {
		t.Fatal(err)
	}
	res, err := dev.LoadDemo("../../docs/examples")
	if err != nil {
		t.Fatal(err)
	}
	l, err := dev.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return devConjur{dev: dev, account: account, url: l.URL, ca: l.CAPEM, key: res.CreatedRoles[account+":"+devPluginRole].Reveal()}
}

// startPluginFor runs `serve` on sock for d's Conjur, pinned to the demo
// plugin login, with no credential of its own.
func startPluginFor(t *testing.T, sock string, d devConjur) (stop func()) {
	t.Helper()
	return startPlugin(t, map[string]string{
		"CONJUR_SWARM_SOCKET": sock, "CONJUR_SWARM_LOG_LEVEL": "error",
		"CONJUR_APPLIANCE_URL": d.url, "CONJUR_ACCOUNT": d.account, "CONJUR_AUTHN_LOGIN": devPluginLogin,
		"CONJUR_SSL_CERTIFICATE": string(d.ca),
	})
}

func statusOf(t *testing.T, sock string) pluginapi.Status {
	t.Helper()
	st, err := pluginapi.NewClient(sock, 10*time.Second).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func writeSecret(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serveFakePluginSocket is a plugin socket that answers every status call
// with status and counts the calls and the bootstrap bodies it receives.
func serveFakePluginSocket(t *testing.T, sock, status string) *pluginapitest.Socket {
	t.Helper()
	return pluginapitest.Serve(t, sock, pluginapitest.Options{Status: status})
}
