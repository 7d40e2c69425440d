package conjur

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Versions reads versions from resource metadata: one listing for several
// ids, one resource request for one id, never a value; invisible variables
// and variables with no value are absent; read without execute is enough.
func TestVersionsFromMetadata(t *testing.T) {
	srv := newDevServer(t, conjurdev.Options{})
	l := srv.listen(t, false)
	if err := srv.SetSecret(varID(1), []byte("second")); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, clientConfig(srv.key, l.URL))
	tests := []struct {
		name          string
		ids           []string
		want          map[string]int
		wantResources int64
	}{
		{"ok/several ids: one listing", []string{varID(0), varID(1), "apps/read-only", "apps/empty", "restricted/hidden"},
			map[string]int{varID(0): 1, varID(1): 2, "apps/read-only": 1}, 1},
		{"ok/one id: one resource request, read without execute", []string{"apps/read-only"},
			map[string]int{"apps/read-only": 1}, 1},
		{"ok/one invisible id: absent", []string{"restricted/hidden"}, map[string]int{}, 1},
		{"ok/no ids: no request", nil, map[string]int{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.ResetCounts()
			got, err := c.Versions(t.Context(), "dev", tt.ids)
			if err != nil {
				t.Fatalf("Versions: %+v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Versions (-want +got):\n%s", diff)
			}
			if n := srv.Count(conjurdev.EpResources); n != tt.wantResources {
				t.Errorf("%d resource requests, want %d", n, tt.wantResources)
			}
			if n := srv.secretRequests(); n != 0 {
				t.Errorf("%d secret requests: Versions must never fetch a value", n)
			}
		})
	}
}

// With more visible variables than one page, the listing goes on until
// every id is found.
func TestVersionsPagesThroughTheListing(t *testing.T) {
	srv := newDevServer(t, conjurdev.Options{})
	var b strings.Builder
	b.WriteString("- &page\n")
	for i := range ResourcePageSize + 50 {
		fmt.Fprintf(&b, "  - !variable page/p%04d\n", i)
	}
	b.WriteString("- !permit\n  role: !group readers\n  privilege: read\n  resources: *page\n")
	if _, err := srv.LoadConjurPolicy(conjurdev.ModePost, "apps", []byte(b.String())); err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprintf("apps/page/p%04d", ResourcePageSize+49)
	for _, id := range []string{"apps/page/p0000", last} {
		if err := srv.SetSecret(id, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	l := srv.listen(t, false)
	c := newClient(t, clientConfig(srv.key, l.URL))
	srv.ResetCounts()
	// Sorted by id, apps/v099 comes after more than a page of others.
	got, err := c.Versions(t.Context(), "dev", []string{"apps/page/p0000", last, varID(99)})
	if err != nil {
		t.Fatalf("Versions: %+v", err)
	}
	if diff := cmp.Diff(map[string]int{"apps/page/p0000": 1, last: 1, varID(99): 1}, got); diff != "" {
		t.Errorf("Versions (-want +got):\n%s", diff)
	}
	if n := srv.Count(conjurdev.EpResources); n != 2 {
		t.Errorf("%d resource requests, want 2 pages", n)
	}
}

func TestVersionsFailOverAndFail(t *testing.T) {
	srv := newDevServer(t, conjurdev.Options{})
	l := srv.listen(t, false)

	c := newClient(t, clientConfig(srv.key, deadURL(t), l.URL))
	got, err := c.Versions(t.Context(), "dev", []string{varID(0), varID(1)})
	if err != nil || got[varID(0)] != 1 {
		t.Fatalf("with the first URL dead: %v, %+v; want the second URL's answer", got, err)
	}

	down := newClient(t, clientConfig(srv.key, deadURL(t)))
	if _, err := down.Versions(t.Context(), "dev", []string{varID(0), varID(1)}); CodeOf(err) != errcode.Unavailable {
		t.Errorf("with Conjur down: %+v, want UNAVAILABLE", err)
	}
	if st := down.Status(); st.LastErrorCode != errcode.Unavailable {
		t.Errorf("status last error %s %q, want the UNAVAILABLE failure recorded", st.LastErrorCode, st.LastError)
	}

	closed := newClient(t, clientConfig(srv.key, l.URL))
	closed.Close()
	if _, err := closed.Versions(t.Context(), "dev", []string{varID(0)}); CodeOf(err) != errcode.Unavailable {
		t.Errorf("after Close: %+v, want UNAVAILABLE", err)
	}
}
