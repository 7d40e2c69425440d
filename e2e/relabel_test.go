package e2e

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// Scenario (issue 23 item 2): stack blog's file declares stack shop's secret
// by name (`stolen: {driver: ..., name: shop_db_password}`). Deploying it
// relabels shop's secret into stack blog. Blog's task is refused, and shop's
// next update still gets shop's value: the shipped mapping takes the owning
// stack from the secret's name, which blog cannot change.
func TestStackCannotTakeAnotherStacksSecret(t *testing.T) {
	s := getSuite(t)
	shop, blog := s.name("shop"), s.name("blog")
	secret := shop + "_db_password"
	// Runs last: after the relabelling neither stack rm removes it.
	t.Cleanup(func() { _, _ = docker("secret", "rm", secret) })
	s.addVariables(t, shop+"/db_password")
	value := []byte("shop-db-password-" + hex.EncodeToString(randomBytes(t, 4)))
	if err := s.dev.SetSecret("apps/"+shop+"/db_password", value); err != nil {
		t.Fatal(err)
	}
	stackFile := func(service, target, secrets string) string {
		return readerStack(s.readerImage, service, target, secrets)
	}
	deployStack(t, shop, stackFile("app", "db_password", "  db_password:\n    driver: "+s.plugin))
	first, f := only(waitReaders(t, shop+"_app", 1, nil))
	checkValues(t, first, f, map[string][]byte{"db_password": value})

	deployStack(t, blog, stackFile("thief", "stolen", "  stolen:\n    driver: "+s.plugin+"\n    name: "+secret))
	if got := strings.TrimSpace(mustDocker(t, "secret", "inspect", "--format", `{{index .Spec.Labels "com.docker.stack.namespace"}}`, secret)); got != blog {
		t.Fatalf("deploying stack %s left %s labelled stack %q; the attack needs it relabelled", blog, secret, got)
	}
	if msg := waitTaskFailure(t, blog+"_thief"); !strings.Contains(msg, "not found") {
		t.Errorf("blog's task using shop's secret: error %q, want Swarm's \"secret ... not found\"", msg)
	}
	s.waitPluginLog(t, s.pluginID, `"secret":"`+secret+`"`, `"service":"`+blog+`_thief"`, "DENIED")

	// The plugin flags the relabelled secret: the audit field and status.
	s.waitPluginLog(t, s.pluginID, `"secret":"`+secret+`"`, `"stack_label_mismatch":"`+blog+`"`)
	var st pluginapi.Status
	if out := s.status(t, s.pluginID); json.Unmarshal([]byte(out), &st) != nil ||
		!slices.ContainsFunc(st.StackMismatches, func(m pluginapi.StackMismatch) bool { return m.Secret == secret && m.Label == blog }) {
		t.Errorf("conjur-swarm status does not list %s as relabelled into %s:\n%s", secret, blog, out)
	}

	mustDocker(t, "service", "update", "--detach", "--force", shop+"_app")
	next, f := only(waitReaders(t, shop+"_app", 1, map[string]bool{first: true}))
	checkValues(t, next, f, map[string][]byte{"db_password": value})
	s.waitPluginLog(t, s.pluginID, `"secret":"`+secret+`"`, `"task":"`+next+`"`, `"rule":"stack-secrets"`, `"variable":"apps/`+shop+`/db_password"`, `"decision":"allow"`)
}
