package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorGolden: in the swarm of testdata/services-using, stack web's
// file relabelled billing's secret billing_db_password (driver
// cyberark/conjur) and other_token (driver vault); web's own secrets are
// labelled web. doctor lists billing_db_password with its repair, and exits
// 1; for another driver it lists that driver's only.
func TestDoctorGolden(t *testing.T) {
	sock := fakeEngineSocket(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"found", []string{"doctor", "--docker-socket", sock}, 1},
		{"found-json", []string{"doctor", "--docker-socket", sock, "-o", "json"}, 1},
		{"other-driver", []string{"doctor", "--docker-socket", sock, "--driver", "vault"}, 1},
		{"none", []string{"doctor", "--docker-socket", sock, "--driver", "none/such"}, 0},
		{"no-engine", []string{"doctor", "--docker-socket", "/nonexistent/docker.sock"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.ReplaceAll(runCLI(tc.args...), sock, "DOCKER_SOCKET")
			if want := fmt.Sprintf("exit status %d\n", tc.code); !strings.Contains(got, want) {
				t.Errorf("want %q in:\n%s", want, got)
			}
			checkGolden(t, filepath.Join("doctor", tc.name+".golden"), got)
		})
	}
}
