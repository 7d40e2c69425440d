package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// opsClient talks to a plugin's socket as `conjur-swarm get/status` do, and
// hands credentials over as the bootstrap agent does (only to this plugin:
// an agent run would hand the key to every plugin on the engine).
func opsClient(pluginID string) *pluginapi.Client {
	return pluginapi.NewClient(filepath.Join(pluginSocketBase, pluginID, "conjur.sock"), 30*time.Second)
}

// replaceFile replaces a file in a bind-mounted directory as an operator
// fixing it would (write a new file, rename it over the old one).
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveriesWithoutRestart: the breakages of issue 18, each repaired in
// place on a running managed plugin, with no disable/enable:
//   - a mapping file broken at enable: `docker plugin enable` succeeds, every
//     answer is MAPPING_INVALID naming the file, and the fixed file is adopted;
//   - a wrong CA: the handoff is refused [TLS], status warns, and every
//     NO_CREDENTIAL answer names that TLS refusal; the CA fixed in place is
//     used by the next handoff;
//   - a wrong key handed over later: refused AUTH_REFUSED, the working key
//     stays, and status warns about it before any restart.
func TestRecoveriesWithoutRestart(t *testing.T) {
	s := getSuite(t)
	ctx := context.Background()
	caDir, mapDir := s.dir("recovery-ca"), s.dir("recovery-mapping")
	mapping, err := os.ReadFile(filepath.Join(s.mapDir, "mapping.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// Wrong CA: the CA of another dev server.
	wrongCA := otherCA(t)
	if err := os.WriteFile(filepath.Join(caDir, "conjur.pem"), wrongCA, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mapDir, "mapping.yml"), []byte("version: 1\nrules:\n  - name: by-label\n    variabel: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	settings := s.pluginSettings(false, s.dir("recovery-identity"))
	for i, kv := range settings {
		switch {
		case strings.HasPrefix(kv, "ca.source="):
			settings[i] = "ca.source=" + caDir
		case strings.HasPrefix(kv, "mapping.source="):
			settings[i] = "mapping.source=" + mapDir
		}
	}
	plugin := runID + "/conjur-recover:e2e"
	t.Cleanup(func() { removePlugin(plugin) })
	pluginID, err := s.installPlugin(plugin, "e2e-"+runID+"-recover", settings)
	if err != nil {
		t.Fatalf("docker plugin enable with a broken mapping file: %v", err)
	}
	pid := pluginPID(pluginID)
	c := opsClient(pluginID)
	id := s.newVariable(t, []byte("recovery-value-1"))
	req := pluginapi.Request{SecretName: s.name("rec"), SecretLabels: map[string]string{"conjur.variable": id}, ServiceName: "svc",
		ServiceLabels: map[string]string{e2eServiceLabel: runID}}

	// 1. The broken mapping file.
	res, err := c.GetSecret(ctx, req)
	if err != nil || !strings.Contains(res.Err, "[MAPPING_INVALID]") || !strings.Contains(res.Err, pluginMappingFile) {
		t.Fatalf("with a broken mapping file: %q %v, want MAPPING_INVALID naming %s", res.Err, err, pluginMappingFile)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Mapping == nil || !st.Mapping.FailClosed || len(st.Mapping.Problems) == 0 {
		t.Fatalf("status with a broken mapping file: %+v %v", st.Mapping, err)
	}
	replaceFile(t, filepath.Join(mapDir, "mapping.yml"), mapping)
	poll(t, "the fixed mapping file to be adopted", 30*time.Second, func() (bool, string) {
		res, err := c.GetSecret(ctx, req)
		if err != nil {
			return false, err.Error()
		}
		return !strings.Contains(res.Err, "[MAPPING_INVALID]"), res.Err
	}, func() string { return s.pluginLog(plugin) })

	// 2. The wrong CA: the handoff is refused, and the answers say why.
	cred, err := s.credentialJSON()
	if err != nil {
		t.Fatal(err)
	}
	ans, err := c.Bootstrap(ctx, cred)
	if err != nil || ans.OK || !strings.Contains(ans.Err, "[TLS]") {
		t.Fatalf("handoff with the wrong CA: %+v %v, want refused [TLS]", ans, err)
	}
	res, err = c.GetSecret(ctx, req)
	if err != nil || !strings.Contains(res.Err, "[NO_CREDENTIAL]") || !strings.Contains(res.Err, "was refused [TLS]") {
		t.Fatalf("answer after the refused handoff: %q %v, want NO_CREDENTIAL naming the TLS refusal", res.Err, err)
	}
	out, err := run(ctx, nil, s.bin, "status", "--socket", c.Socket())
	if err != nil || !strings.Contains(out, "WARNING: the credential handed over") || !strings.Contains(out, "[TLS]") {
		t.Errorf("status after the refused handoff (%v):\n%s", err, out)
	}

	// The CA fixed in place: the next handoff's TLS failure re-reads it.
	replaceFile(t, filepath.Join(caDir, "conjur.pem"), s.listener.CAPEM)
	ans, err = c.Bootstrap(ctx, cred)
	if err != nil || !ans.OK {
		t.Fatalf("handoff after the CA was fixed in place: %+v %v", ans, err)
	}
	res, err = c.GetSecret(ctx, req)
	if err != nil || string(res.Value) != "recovery-value-1" {
		t.Fatalf("after the CA fix: %q %v", res.Err, err)
	}

	// 3. A wrong key put into the bootstrap secret later.
	ans, err = c.Bootstrap(ctx, []byte(fmt.Sprintf(`{"login":%q,"api_key":"not-the-key-0000","account":%q,"appliance_url":%q}`,
		pluginLogin, s.dev.Account(), s.listener.URL)))
	if err != nil || ans.OK || !strings.Contains(ans.Err, "[AUTH_REFUSED]") {
		t.Fatalf("wrong key: %+v %v, want refused AUTH_REFUSED", ans, err)
	}
	out, err = run(ctx, nil, s.bin, "status", "--socket", c.Socket())
	if err != nil || !strings.Contains(out, "WARNING: the credential handed over") || !strings.Contains(out, "loses it at its next restart") {
		t.Errorf("status does not warn about the refused key before a restart (%v):\n%s", err, out)
	}
	res, err = c.GetSecret(ctx, req)
	if err != nil || string(res.Value) != "recovery-value-1" {
		t.Fatalf("the working key was dropped for a refused one: %q %v", res.Err, err)
	}
	if after := pluginPID(pluginID); pid != "" && after != pid {
		t.Errorf("the plugin was restarted (pid %s, now %s)", pid, after)
	}
}

// otherCA is the CA certificate of another dev server: not the one that
// signed the suite's listener.
func otherCA(t *testing.T) []byte {
	t.Helper()
	dev, err := newBareDevServer()
	if err != nil {
		t.Fatal(err)
	}
	l, err := dev.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	return l.CAPEM
}

func newBareDevServer() (*conjurdev.Server, error) {
	return conjurdev.New(conjurdev.Options{Logger: zap.NewNop()})
}
