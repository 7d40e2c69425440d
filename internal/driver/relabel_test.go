package driver

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// TestRelabelledSecretIsFlagged is issue 23 item 2's detection: a request
// for a secret whose stack label disagrees with its name (another stack's
// file relabelled it) carries stack_label_mismatch in its audit line, counts
// in conjur_swarm_stack_label_mismatches_total, and is listed in status;
// a stack's own secret is none of these.
func TestRelabelledSecretIsFlagged(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	d, logs := newTestDriver(t, demoFetcher(), &fakeResolver{}, func(o *Options) { o.Observer = m })
	ask := func(secret, label string) {
		req := labelled("apps/demo/db-password")
		req.SecretName = secret
		req.SecretLabels["com.docker.stack.namespace"] = label
		if res := d.GetSecret(context.Background(), req); res.Err != "" {
			t.Fatalf("GetSecret(%s): %s", secret, res.Err)
		}
	}
	ask("demo_db_password", "demo")
	ask("shop_db_password", "blog")
	ask("shop_db_password", "blog")

	var flagged []string
	for _, e := range logs.All() {
		if v, ok := e.ContextMap()["stack_label_mismatch"]; ok {
			flagged = append(flagged, e.ContextMap()["secret"].(string)+"="+v.(string))
		}
	}
	if strings.Join(flagged, ",") != "shop_db_password=blog,shop_db_password=blog" {
		t.Errorf("audit lines with stack_label_mismatch: %v, want shop_db_password's two", flagged)
	}
	if n := testutil.ToFloat64(m.relabel); n != 2 {
		t.Errorf("conjur_swarm_stack_label_mismatches_total = %v, want 2", n)
	}
	got := d.Status().StackMismatches
	if len(got) != 1 || got[0].Secret != "shop_db_password" || got[0].Label != "blog" || got[0].Requests != 2 || got[0].LastSeen.IsZero() {
		t.Fatalf("status stack mismatches %+v, want shop_db_password labelled blog, 2 requests", got)
	}
}

// TestStackMismatchesStayBounded: status keeps the most recently seen
// MaxStackMismatches relabelled secrets, whatever the number asked for.
func TestStackMismatchesStayBounded(t *testing.T) {
	j := newJournal(4)
	for i := range pluginapi.MaxStackMismatches + 10 {
		r := audit.Record{Secret: "s" + string(rune('a'+i%26)) + string(rune('a'+i/26)), StackLabelMismatch: "blog"}
		r.Time = r.Time.AddDate(0, 0, i)
		j.add(r)
	}
	got := j.stackMismatches()
	if len(got) != pluginapi.MaxStackMismatches {
		t.Fatalf("%d relabelled secrets kept, want %d", len(got), pluginapi.MaxStackMismatches)
	}
	for _, m := range got {
		if m.Secret == "saa" { // the first seen goes first
			t.Fatalf("the oldest relabelled secret was kept: %+v", got)
		}
	}
}
