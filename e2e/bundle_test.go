package e2e

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// e2eBundleRules are the bundle scenario's rules: a stack's app_env secret
// is a dotenv bundle of three of the stack's variables (one a field of a
// JSON value) and its app_dsn secret a template DSN, both served only to
// the stack's own services.
func e2eBundleRules() []any {
	stackOnly := map[string]any{"service_labels": map[string]any{"com.docker.stack.namespace": "{stack}"}}
	return []any{
		map[string]any{
			"name":  "e2e-stack-env",
			"match": map[string]any{"secret_labels": map[string]any{"com.docker.stack.namespace": "*"}, "secret": "*_app_env"},
			"bundle": map[string]any{
				"format": "dotenv",
				"variables": map[string]any{
					"DB_USER":               "apps/{stack}/db-user",
					"DB_PASSWORD":           "apps/{stack}/db-password",
					"AWS_SECRET_ACCESS_KEY": map[string]any{"variable": "apps/{stack}/aws", "field": "SecretAccessKey"},
				},
			},
			"allow": stackOnly,
		},
		map[string]any{
			"name":  "e2e-stack-dsn",
			"match": map[string]any{"secret_labels": map[string]any{"com.docker.stack.namespace": "*"}, "secret": "*_app_dsn"},
			"bundle": map[string]any{
				"format":    "template",
				"variables": map[string]any{"user": "apps/{stack}/db-user", "password": "apps/{stack}/db-password"},
				"template":  "postgres://{{ .user }}:{{ urlquery .password }}@db:5432/app",
			},
			"allow": stackOnly,
		},
	}
}

// Scenario: a stack deploys a service whose secrets are a dotenv bundle and
// a template DSN, each rendered from several Conjur variables fetched
// together; the task reads exactly the rendered bytes.
func TestStackBundles(t *testing.T) {
	s := getSuite(t)
	stack := s.name("bdl")
	s.addVariables(t, stack+"/db-user", stack+"/db-password", stack+"/aws")
	suffix := hex.EncodeToString(randomBytes(t, 4))
	user := "app_" + suffix
	password := `pa"s$w\rd` + "\n" + suffix
	awsKey := "k/ey+=" + suffix
	for id, v := range map[string]string{
		"apps/" + stack + "/db-user":     user,
		"apps/" + stack + "/db-password": password,
		"apps/" + stack + "/aws":         `{"AccessKeyId":"AKIAE2E","SecretAccessKey":"` + awsKey + `"}`,
	} {
		if err := s.dev.SetSecret(id, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	// Written out by hand from the documented rules: sorted by name, each
	// value between single quotes, as it is.
	wantEnv := "AWS_SECRET_ACCESS_KEY='k/ey+=" + suffix + "'\n" +
		"DB_PASSWORD='pa\"s$w\\rd\n" + suffix + "'\n" +
		"DB_USER='" + user + "'\n"
	wantDSN := "postgres://" + user + ":" + url.QueryEscape(password) + "@db:5432/app"

	compose := fmt.Sprintf(`version: "3.8"
services:
  app:
    image: %[1]s
    command: ["app_env", "app_dsn"]
    networks: [hostnet]
    deploy:
      restart_policy: {condition: none}
    secrets: [app_env, app_dsn]
secrets:
  app_env:
    driver: %[2]s
  app_dsn:
    driver: %[2]s
networks:
  hostnet:
    external: true
    name: host
`, s.readerImage, s.plugin)
	deployStack(t, stack, compose)

	taskID, f := only(waitReaders(t, stack+"_app", 1, nil))
	checkValues(t, taskID, f, map[string][]byte{"app_env": []byte(wantEnv), "app_dsn": []byte(wantDSN)})
	s.waitPluginLog(t, s.pluginID, `"secret":"`+stack+`_app_env"`, `"rule":"e2e-stack-env"`, `"members":["apps/`+stack+`/aws"`)
}

// readerStack is a stack file of one service that runs image with target
// as its command, on the host network, once, with the swarm secret target;
// secrets is the file's secrets: block body (each secret's driver, name).
func readerStack(image, service, target, secrets string) string {
	return fmt.Sprintf(`version: "3.8"
services:
  %[1]s:
    image: %[3]s
    command: [%[2]q]
    networks: [hostnet]
    deploy:
      restart_policy: {condition: none}
    secrets: [%[2]s]
secrets:
%[4]s
networks:
  hostnet:
    external: true
    name: host
`, service, target, image, secrets)
}

// deployStack deploys compose as stack (images as given, never resolved)
// and removes the stack when the test ends.
func deployStack(t *testing.T, stack, compose string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "stack.yml")
	if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = docker("stack", "rm", stack) })
	mustDocker(t, "stack", "deploy", "--resolve-image", "never", "-c", file, stack)
}
