package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// TestMappingInvalidAtStart: with a mapping file that was broken when the
// plugin started, every request is answered MAPPING_INVALID naming the file
// and its first problem, Conjur is never asked, status lists every problem,
// and the fixed file is adopted without a restart.
func TestMappingInvalidAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapping.yml")
	broken := "version: 1\nrules:\n  - name: by-label\n    match: {secret_labels: {conjur.variable: \"*\"}}\n    variabel: x\n"
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	store := policy.OpenStore(path, zap.NewNop())
	f := demoFetcher()
	d, logs := newTestDriver(t, f, store, func(o *Options) { o.PolicyStatus = store })

	res := d.GetSecret(t.Context(), labelled("apps/demo/db-password"))
	for _, want := range []string{`conjur-swarm [MAPPING_INVALID] secret "db_password"`, path + ":3:5", "policy validate"} {
		if !strings.Contains(res.Err, want) {
			t.Errorf("Err %q lacks %q", res.Err, want)
		}
	}
	if res.Value != nil || len(f.refs) != 0 {
		t.Errorf("a value was served or Conjur asked (%d fetches) with no policy in force", len(f.refs))
	}
	if n := logs.FilterMessage("secret not served").FilterFieldKey("code").Len(); n != 1 {
		t.Errorf("%d audit lines for the refusal, want 1", n)
	}
	st := d.Status()
	if st.Mapping == nil || !st.Mapping.FailClosed || len(st.Mapping.Problems) != 2 || st.Counters.ByCode[errcode.MappingInvalid] != 1 {
		t.Fatalf("status while no policy is in force: %+v %+v", st.Mapping, st.Counters)
	}

	good := "version: 1\nrules:\n  - name: by-label\n    match: {secret_labels: {conjur.variable: \"*\"}}\n    variable: \"{secret_label:conjur.variable}\"\n"
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	store.Check()
	store.Check()
	res = d.GetSecret(t.Context(), labelled("apps/demo/db-password"))
	if res.Err != "" || string(res.Value) != demoValue {
		t.Fatalf("after the fix: Err %q", res.Err)
	}
	if st := d.Status(); st.Mapping.FailClosed || st.Mapping.Problems != nil || st.Mapping.Rules != 1 {
		t.Errorf("status after the fix: %+v", st.Mapping)
	}
}
