package conjur

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// netnsChild marks the copy of this test binary that runs inside the
// network namespace TestCloudLoginAtTheRealAddresses creates.
const netnsChild = "CONJUR_SWARM_TEST_NETNS_CHILD"

// TestCloudLoginAtTheRealAddresses: the Azure, GCP and AWS (authn-iam,
// IMDSv2) logins reach the metadata service where the clouds put it, with
// no address overridden:
// inside a network namespace this test creates (as e2e/cluster's lab
// does), 169.254.169.254 is on the loopback device and
// metadata.google.internal resolves to it (ip netns exec's
// /etc/netns/<ns>/hosts); the fake metadata service listens there on port
// 80, and a copy of this test binary runs the logins inside. Nothing leaves
// the namespace.
func TestCloudLoginAtTheRealAddresses(t *testing.T) {
	if os.Getenv(netnsChild) == "1" {
		cloudLoginInside(t)
		return
	}
	if _, err := exec.LookPath("ip"); err != nil || os.Geteuid() != 0 {
		unavailable(t, "a network namespace needs root and iproute2's ip")
	}
	ns := fmt.Sprintf("csmd-%d", os.Getpid())
	hostsDir := filepath.Join("/etc/netns", ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		_ = os.RemoveAll(hostsDir)
		_ = os.Remove(filepath.Dir(hostsDir)) // only when empty: another's namespaces may keep files there
	})
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", "169.254.169.254/32", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			unavailable(t, fmt.Sprintf("ip %s: %v: %s", strings.Join(args, " "), err, out))
		}
	}
	if err := os.MkdirAll(hostsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := "127.0.0.1 localhost\n169.254.169.254 metadata.google.internal\n"
	if err := os.WriteFile(filepath.Join(hostsDir, "hosts"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", ns, self, "-test.run", "^TestCloudLoginAtTheRealAddresses$", "-test.count", "1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(t.Context(), "ip", args...)
	cmd.Env = append(os.Environ(), netnsChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("the logins inside namespace %s: %v\n%s", ns, err, out)
	}
	t.Logf("inside namespace %s:\n%s", ns, out)
}

// cloudLoginInside runs in the namespace: the fake metadata service on
// 169.254.169.254:80 (Azure's, GCP's and EC2's paths), the dev server on
// loopback, and the plugin's configuration without MetadataURL.
func cloudLoginInside(t *testing.T) {
	srv, azure, google := cloudServer(t)
	l := srv.listen(t, false)
	tokens := cloudTokens(azure, google)
	imds := newFakeIMDS(t, iamRole)
	md := newFakeMetadataAt(t, "169.254.169.254:80", func(r *http.Request) (string, error) {
		if strings.HasPrefix(r.URL.Path, "/metadata/identity/oauth2/token") {
			return tokens[AuthnAzure](r)
		}
		if r.Host != "metadata.google.internal" || r.URL.Path != "/computeMetadata/v1/instance/service-accounts/default/identity" {
			return "", errString("not a path the clouds serve: " + r.Host + r.URL.Path)
		}
		return tokens[AuthnGCP](r)
	}, imds)
	for _, kind := range []string{AuthnAzure, AuthnGCP} {
		t.Run(kind, func(t *testing.T) { cloudLoginCases(t, cloudConfig(l.URL, kind, ""), md) })
	}
	t.Run(AuthnIAM, func(t *testing.T) { iamLoginCases(t, cloudConfig(l.URL, AuthnIAM, ""), imds) })
}

// unavailable fails under CI=true (the real parts must be there) and skips
// elsewhere, saying what is missing.
func unavailable(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run: %s", what)
	}
	t.Skipf("skipped: %s", what)
}
