package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

// docBlock is one ```sh block of a Markdown file.
type docBlock struct {
	section string // the heading it is under
	text    string
	skip    string // why the docs test does not run it ("" = run)
}

// skipMarker, on the line before a block, keeps the docs test from running
// it, with the reason: <!-- docs-test: skip: REASON -->.
var skipMarker = regexp.MustCompile(`^<!-- docs-test: skip: (.+) -->$`)

// docBlocks returns the ```sh blocks of a Markdown file, indented ones (in
// lists) included, with the heading each is under.
func docBlocks(doc string) []docBlock {
	var out []docBlock
	var cur *docBlock
	var indent, section, skip string
	for _, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case cur == nil && trimmed == "```sh":
			indent = line[:len(line)-len(trimmed)]
			cur = &docBlock{section: section, skip: skip}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur, skip = nil, ""
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		case strings.HasPrefix(line, "#"):
			section, skip = strings.TrimLeft(line, "# "), ""
		default:
			if m := skipMarker.FindStringSubmatch(trimmed); m != nil {
				skip = m[1]
			} else if trimmed != "" {
				skip = ""
			}
		}
	}
	return out
}

func TestDocBlocks(t *testing.T) {
	doc := "# A\n```sh\none\n```\n<!-- docs-test: skip: elsewhere -->\n```sh\ntwo\n```\n## B\n1. step\n\n   ```sh\n   three \\\n     more\n   ```\n```yaml\nno\n```\n"
	got := docBlocks(doc)
	want := []docBlock{
		{section: "A", text: "one\n"},
		{section: "A", text: "two\n", skip: "elsewhere"},
		{section: "B", text: "three \\\n  more\n"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("docBlocks:\n got %q\nwant %q", got, want)
	}
}

// conjurShim stands in for the Conjur CLI, which this machine does not
// have: the commands the docs use (`policy load -b BRANCH -f FILE`,
// `host rotate-api-key -i ID`, `variable set -i ID -v VALUE`,
// `authenticator enable --id authn-jwt/ID`), sent to the dev server as the
// CLI sends them.
const conjurShim = `#!/usr/bin/env bash
set -euo pipefail
token() { curl -sSf --cacert "$SHIM_CA" -H 'Accept-Encoding: base64' --data-binary "$SHIM_ADMIN_KEY" "$SHIM_URL/authn/$SHIM_ACCOUNT/admin/authenticate"; }
case "$1 $2" in
"policy load")
  shift 2; branch= file=
  while (($#)); do case $1 in -b) branch=$2; shift 2;; -f) file=$2; shift 2;; *) echo "conjur shim: $1?" >&2; exit 2;; esac; done
  curl -sSf --cacert "$SHIM_CA" -H "Authorization: Token token=\"$(token)\"" -X POST --data-binary @"$file" \
    "$SHIM_URL/policies/$SHIM_ACCOUNT/policy/$branch"; echo;;
"host rotate-api-key")
  [[ $3 == -i ]] || { echo "conjur shim: want -i ID" >&2; exit 2; }
  id=$(jq -rn --arg v "host:$4" '$v|@uri')
  curl -sSf --cacert "$SHIM_CA" -H "Authorization: Token token=\"$(token)\"" -X PUT \
    "$SHIM_URL/authn/$SHIM_ACCOUNT/api_key?role=$id"; echo;;
"variable set")
  [[ $3 == -i && $5 == -v ]] || { echo "conjur shim: want -i ID -v VALUE" >&2; exit 2; }
  curl -sSf --cacert "$SHIM_CA" -H "Authorization: Token token=\"$(token)\"" --data-binary "$6" \
    "$SHIM_URL/secrets/$SHIM_ACCOUNT/variable/$4";;
"authenticator enable")
  [[ $3 == --id && $4 == authn-jwt/* ]] || { echo "conjur shim: want --id authn-jwt/ID" >&2; exit 2; }
  curl -sSf --cacert "$SHIM_CA" -H "Authorization: Token token=\"$(token)\"" -X PATCH --data enabled=true \
    "$SHIM_URL/$4/$SHIM_ACCOUNT";;
*) echo "conjur shim: $* is not a command the docs use" >&2; exit 2;;
esac
`

// TestOperatorDocsRunAsWritten runs every ```sh block of docs/install.md,
// docs/troubleshooting.md, docs/rotation.md and docs/conjur.md on this
// engine, in that order (install.md's upgrade and removal last), as one bash -euo
// pipefail script. As in TestQuickstartRunsAsWritten only names change:
// the plugin, images, services and secrets get this run's prefix, host
// directories and files go to a temporary directory, and Conjur is a dev
// server of its own (the Conjur CLI is a shim over its API). Between some
// blocks the script does what an operator does by hand, and says so: put
// the CA and the mapping file in place, copy a key Conjur printed.
func TestOperatorDocsRunAsWritten(t *testing.T) {
	s := getSuite(t)
	if _, err := docker("service", "inspect", "shop_app"); err == nil {
		harness.Unavailable(t, "the operator docs' walk-through", "a service named shop_app already runs on this engine; docs/troubleshooting.md and docs/rotation.md use that name (remove it: docker stack rm shop)")
	}
	dir := s.dir("docs")
	p := runID + "-docs"

	dev, err := conjurdev.New(conjurdev.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.LoadDemo(filepath.Join(s.root, "docs", "examples")); err != nil {
		t.Fatal(err)
	}
	rollout, err := dev.LoadConjurPolicy(conjurdev.ModePost, "root", mustRead(t, filepath.Join(s.root, "docs", "examples", "rollout-policy.yml")))
	if err != nil {
		t.Fatal(err)
	}
	l, err := dev.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pluginKey, err := dev.APIKey("host:swarm/conjur-plugin")
	if err != nil {
		t.Fatal(err)
	}
	rolloutKey := rollout.CreatedRoles[dev.Account()+":host:swarm/conjur-rollout"]
	if rolloutKey == "" {
		t.Fatalf("docs/examples/rollout-policy.yml created no host swarm/conjur-rollout: %v", rollout.CreatedRoles)
	}
	if err := os.WriteFile(filepath.Join(dir, "conjur-rollout.key"), []byte(rolloutKey), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := s.dir("docs-bin")
	if err := os.WriteFile(filepath.Join(bin, "conjur"), []byte(conjurShim), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(s.bin, filepath.Join(bin, "conjur-swarm")); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "dev-ca.pem")
	if err := os.WriteFile(caFile, l.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(dir, "etc")

	// The secret troubleshooting.md starts from: one of stack shop, with a
	// service of that stack.
	shopSecret := "shop_db-password"
	names := strings.NewReplacer(
		// Paths inside the plugin and the rollout agent's container stay.
		"_FILE=/etc/conjur-swarm", "_FILE=/etc/conjur-swarm", // CONJUR_CERT_FILE=, CONJUR_SWARM_*_FILE=
		"_PATH=/etc/conjur-swarm", "_PATH=/etc/conjur-swarm", // JWT_TOKEN_PATH=
		"target=/etc/conjur-swarm", "target=/etc/conjur-swarm",
		"/etc/conjur-swarm", etc,
		"/var/lib/conjur-swarm", filepath.Join(dir, "state"), // the state mount's host directory (conjur.md)
		"cyberark/conjur", p+"/conjur",
		"make plugin\n", "make plugin PLUGIN="+p+"/conjur VERSION="+p+"\n",
		"make upgrade\n", "make upgrade PLUGIN="+p+"/conjur VERSION="+p+"-upgraded\n",
		"IMAGE=conjur-swarm-agent:latest", "IMAGE="+p+"-agent:latest",
		"https://conjur.example.com", l.URL,
		"CONJUR_ACCOUNT=myorg", "CONJUR_ACCOUNT="+dev.Account(),
		`"account":"myorg"`, `"account":"`+dev.Account()+`"`,
		`"myorg:host:`, `"`+dev.Account()+":host:",
		"/root/", dir+"/",
		"/tmp/", dir+"/",
		"make -s shell-image", "make -s shell-image SHELL_IMAGE="+p+"-shell:latest",
		"com.docker.swarm.service.name=web", "com.docker.swarm.service.name="+p+"-web",
		"db_password", p+"_db_password",
		"--name web ", "--name "+p+"-web ",
		"service=web", "service="+p+"-web",
		"docker secret create conjur-bootstrap -", "docker secret create "+p+"-bootstrap -",
		"docker secret create conjur-bootstrap-2 -", "docker secret create "+p+"-bootstrap-2 -",
		"--name conjur-bootstrap-agent ", "--name "+p+"-bootstrap-agent ",
		"--secret source=conjur-bootstrap,target=conjur-bootstrap ", "--secret source="+p+"-bootstrap,target=conjur-bootstrap ",
		"--secret-rm conjur-bootstrap ", "--secret-rm "+p+"-bootstrap ",
		"source=conjur-bootstrap-2,", "source="+p+"-bootstrap-2,",
		"  conjur-bootstrap-agent\n", "  "+p+"-bootstrap-agent\n",
		"account=myorg", "account="+dev.Account(),
		"docker secret rm conjur-bootstrap\n", "docker secret rm "+p+"-bootstrap\n",
		"docker secret create conjur-rollout -", "docker secret create "+p+"-rollout -",
		"--name conjur-rollout ", "--name "+p+"-rollout ",
		"--secret conjur-rollout ", "--secret source="+p+"-rollout,target=conjur-rollout ",
		"service.name=conjur-rollout", "service.name="+p+"-rollout",
		"services-using apps/shop/db-password -f", "services-using apps/shop/db-password --driver "+p+"/conjur -f",
	)

	var script strings.Builder
	script.WriteString("export PATH=" + bin + ":$PATH\n")
	fmt.Fprintf(&script, "export SHIM_URL=%s SHIM_ACCOUNT=%s SHIM_CA=%s SHIM_ADMIN_KEY=%s\n", l.URL, dev.Account(), caFile, dev.AdminAPIKey())
	add := func(doc string, from, to func(docBlock) bool, hooks map[string]string) {
		data := mustRead(t, filepath.Join(s.root, "docs", doc))
		on := from == nil
		for _, b := range docBlocks(string(data)) {
			if !on && from != nil && from(b) {
				on = true
			}
			if to != nil && to(b) {
				on = false
			}
			if !on {
				continue
			}
			if b.skip != "" {
				fmt.Fprintf(&script, "# %s, %s: not run: %s\n", doc, b.section, b.skip)
				continue
			}
			for marker, hook := range hooks {
				if strings.Contains(b.text, marker) {
					fmt.Fprintf(&script, "# --- by hand (not in %s) ---\n%s", doc, hook)
				}
			}
			fmt.Fprintf(&script, "# --- %s, %s ---\n%s", doc, b.section, names.Replace(b.text))
		}
	}
	// install.md's upgrade and removal run last: an upgrade drops the
	// handed-over credential, which the agent of conjur.md gives back.
	upgrading := func(b docBlock) bool { return b.section == "Upgrading" }
	handoff := fmt.Sprintf("curl -sSf --unix-socket /run/docker/plugins/$(docker plugin inspect -f '{{.Id}}' %s/conjur:latest)/conjur.sock "+
		"--data-binary @%s/credential.json http://plugin/ConjurSwarm.Bootstrap; echo\n", p, dir)
	cred := fmt.Sprintf(`{"login":%q,"api_key":%q,"account":%q,"appliance_url":%q}`, pluginLogin, pluginKey, dev.Account(), l.URL)
	if err := os.WriteFile(filepath.Join(dir, "credential.json"), []byte(cred), 0o600); err != nil {
		t.Fatal(err)
	}
	add("install.md", nil, upgrading, map[string]string{
		// Step 2 says to put Conjur's CA and the mapping file there.
		"docker plugin set " + "cyberark/conjur:latest \\\n  CONJUR_APPLIANCE_URL": fmt.Sprintf("cp %s %s/ca/conjur.pem\ncp %s %s/mapping/mapping.yml\n",
			caFile, etc, filepath.Join(s.root, "docs", "examples", "mapping.yml"), etc),
		// The service's task and the check need a credential: conjur.md's
		// handoff, done once here.
		"timeout 60 sh -c 'until docker ps": handoff,
	})
	add("troubleshooting.md", nil, nil, map[string]string{
		"docker secret inspect -f": fmt.Sprintf("docker secret create --driver %[1]s/conjur:latest --label com.docker.stack.namespace=shop %[2]s\n"+
			"docker service create -d --name shop_app --label com.docker.stack.namespace=shop --restart-condition none --no-resolve-image --network host --secret %[2]s %[3]s %[2]s\n"+
			"secret_id=$(docker secret inspect -f '{{.ID}}' %[2]s)\n", p, shopSecret, s.readerImage),
	})
	// rotation.md before conjur.md, whose last steps leave the plugin
	// waiting for a JWT.
	add("rotation.md", nil, nil, nil)
	add("conjur.md", nil, nil, map[string]string{
		// The operator keeps an admin user's API key in a root-only file.
		"conjur_api() {": fmt.Sprintf("install -m 0600 /dev/null %[1]s/conjur-admin.key && printf %%s \"$SHIM_ADMIN_KEY\" > %[1]s/conjur-admin.key\n", dir),
		// The operator copies the key from policy load's answer.
		`"$api_key"`: "api_key=$(jq -r .api_key " + filepath.Join(dir, "credential.json") + ")\n",
	})
	add("install.md", upgrading, nil, map[string]string{
		// The rolling upgrade creates the plugin from the directory step 1
		// copies to the other managers (a block this test does not run).
		"scripts/upgrade-plugin.sh cyberark/conjur:latest /tmp/conjur-plugin/plugin": fmt.Sprintf(
			"tar -C build -czf %[1]s/conjur-plugin.tgz plugin\nmkdir -p %[1]s/conjur-plugin && tar -C %[1]s/conjur-plugin -xzf %[1]s/conjur-plugin.tgz\n", dir),
	})
	text := strings.ReplaceAll(script.String(), "1lymbeu1h1o2wrpuxdfllva6z", "$secret_id")
	t.Cleanup(func() {
		_, _ = docker("service", "rm", p+"-web", p+"-bootstrap-agent", p+"-rollout", "shop_app")
		_ = waitContainersGone(p)
		_ = waitContainersGone("shop_app")
		_, _ = docker("secret", "rm", p+"_db_password", p+"-bootstrap", p+"-bootstrap-2", p+"-rollout", shopSecret)
		removePlugin(p + "/conjur:latest")
		_, _ = docker("image", "rm", "-f", p+"-agent:latest", p+"-shell:latest")
	})

	docScript{name: "docs.sh", dir: dir, root: s.root, timeout: 8 * time.Minute}.run(t, text,
		"decision:     allow",            // install.md: policy explain of the operator's secret
		"shop_app",                       // rotation.md: services-using
		"handoff, fingerprint",           // conjur.md: status after the agent
		"identity:     shop",             // conjur.md: policy explain in the per-stack identity mode
		p+"_db_password",                 // install.md: the removal list
		"setting(s) kept",                // install.md: make upgrade and the rolling upgrade's script
		"/run/secrets/"+p+"_db_password", // install.md: the value's size, read in the task
		"no update",                      // troubleshooting.md: a service's update state
	)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
