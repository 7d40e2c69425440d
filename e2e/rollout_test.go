package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// servicesUsing runs `conjur-swarm services-using VARIABLE -o json` on this
// manager against the suite's mapping file and plugin.
func (s *suite) servicesUsing(t *testing.T, variable string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := run(ctx, nil, s.bin, "services-using", variable, "-o", "json",
		"-f", filepath.Join(s.mapDir, "mapping.yml"), "--driver", s.plugin)
	if err != nil {
		t.Fatalf("conjur-swarm services-using: %v", err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("services-using -o json: %v\n%s", err, out)
	}
	return rows
}

// services-using on the real swarm lists exactly the services whose driver
// secrets resolve to the variable, through the mapping as the plugin would.
func TestServicesUsing(t *testing.T) {
	s := getSuite(t)
	id := s.newVariable(t, []byte("services-using-value"))
	other := s.newVariable(t, []byte("other-value"))
	a, b, c := s.name("su"), s.name("su"), s.name("su")
	s.secret(t, s.plugin, a, "conjur.variable="+id)
	s.secret(t, s.plugin, b, "conjur.variable="+id)
	s.secret(t, s.plugin, c, "conjur.variable="+other)
	one, two, three := s.name("susvc"), s.name("susvc"), s.name("susvc")
	s.service(t, one, []string{a}, "--replicas", "0")
	s.service(t, two, []string{b, c}, "--replicas", "0")
	s.service(t, three, []string{c}, "--replicas", "0")

	want := []map[string]any{
		{"service": one, "secret": a, "rule": "by-label"},
		{"service": two, "secret": b, "rule": "by-label"},
	}
	if diff := cmp.Diff(want, s.servicesUsing(t, id)); diff != "" {
		t.Errorf("services-using %s (-want +got):\n%s", id, diff)
	}
	want = []map[string]any{
		{"service": two, "secret": c, "rule": "by-label"},
		{"service": three, "secret": c, "rule": "by-label"},
	}
	if diff := cmp.Diff(want, s.servicesUsing(t, other)); diff != "" {
		t.Errorf("services-using %s (-want +got):\n%s", other, diff)
	}
}
