package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeEngineSocket serves testdata/services-using/{services,secrets}.json as
// the Docker Engine API on a unix socket and returns its path.
func fakeEngineSocket(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("testdata", "services-using")
	answers := map[string][]byte{}
	for _, name := range []string{"services", "secrets"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		answers["/v1.41/"+name] = b
	}
	return serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := answers[r.URL.Path]
		if !ok || r.Method != http.MethodGet {
			http.Error(w, `{"message":"unexpected `+r.Method+" "+r.URL.Path+`"}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write(b)
	}))
}

// The swarm of testdata/services-using: web_api (stack web) and reports
// read apps/web/db_password through the plugin; billing_api names web's
// secret but the mapping denies it; legacy reads it through another driver;
// reports' "plain" secret is a swarm-held one; edge's rule reads the node.
func TestServicesUsingGolden(t *testing.T) {
	sock := fakeEngineSocket(t)
	m := filepath.Join("testdata", "services-using", "mapping.yml")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"found", []string{"services-using", "apps/web/db_password", "-f", m, "--docker-socket", sock}, 0},
		{"found-json", []string{"services-using", "apps/web/db_password", "-f", m, "--docker-socket", sock, "-o", "json"}, 0},
		{"other-driver", []string{"services-using", "apps/web/db_password", "-f", m, "--docker-socket", sock, "--driver", "vault"}, 0},
		{"none", []string{"services-using", "apps/other", "--docker-socket", sock}, 0},
		{"broken-mapping", []string{"services-using", "apps/x", "-f", "testdata/policy/broken.yml", "--docker-socket", sock}, 1},
		{"no-engine", []string{"services-using", "apps/x", "--docker-socket", "/nonexistent/docker.sock"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.ReplaceAll(runCLI(tc.args...), sock, "DOCKER_SOCKET")
			if want := fmt.Sprintf("exit status %d\n", tc.code); !strings.Contains(got, want) {
				t.Errorf("want %q in:\n%s", want, got)
			}
			checkGolden(t, filepath.Join("services-using", tc.name+".golden"), got)
		})
	}
}
