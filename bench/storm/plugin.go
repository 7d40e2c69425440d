package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// mappingFile is the plugin's mapping: the built-in by-label rule with
// reuse stated, under apps/.
func mappingFile(reuse bool) string {
	return fmt.Sprintf(`version: 1
within: [apps/]
rules:
  - name: by-label
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "{secret_label:conjur.variable}"
    reuse: %t
`, reuse)
}

// startPlugin runs `conjur-swarm serve` as its own process, configured
// through the environment only, as the managed plugin is, with the
// credential in a file.
func startPlugin(ctx context.Context, name, bin string, reuse bool, extraEnv []string, cj *conjurCtl, work string) (*child, string, []string, error) {
	mapFile := filepath.Join(work, name+"-mapping.yml")
	if err := os.WriteFile(mapFile, []byte(mappingFile(reuse)), 0o644); err != nil {
		return nil, "", nil, err
	}
	sock := filepath.Join(work, name+".sock")
	settings := []string{
		"CONJUR_APPLIANCE_URL=" + cj.url,
		"CONJUR_ACCOUNT=" + cj.account,
		"CONJUR_AUTHN_LOGIN=" + pluginLogin,
		"CONJUR_SWARM_ALLOW_HTTP=true",
		"CONJUR_SWARM_CREDENTIAL_FILE=" + filepath.Join(work, "credential"),
		"CONJUR_SWARM_MAPPING_FILE=" + mapFile,
		"CONJUR_SWARM_SOCKET=" + sock,
	}
	settings = append(settings, extraEnv...)
	p, err := startChild(bin, work, name, []string{"serve"}, settings)
	if err != nil {
		return nil, "", nil, err
	}
	c := pluginapi.NewClient(sock, time.Second)
	err = p.waitReady(ctx, func() error {
		_, err := c.Status(ctx)
		return err
	})
	if err != nil {
		return nil, "", nil, err
	}
	return p, sock, settings, nil
}
