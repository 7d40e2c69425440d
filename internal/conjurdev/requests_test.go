package conjurdev

import (
	"slices"
	"testing"
)

func TestRequests_logRolesAndVariables(t *testing.T) {
	e := newEnv(t)
	admin, plugin := e.admin(), e.plugin()
	if _, err := plugin.RetrieveBatchSecretsSafe([]string{"apps/demo/db-password", "apps/shop/api-token"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RetrieveSecret("apps/demo/db-password"); err != nil {
		t.Fatal(err)
	}
	e.srv.Faults().SetStatus(503, 1)
	_, _ = admin.RetrieveSecret("apps/demo/db-password")
	e.srv.Faults().Reset()

	var got []Request
	for _, r := range e.srv.Requests() {
		if r.Endpoint != EpAuthn {
			got = append(got, r)
		}
	}
	want := []Request{
		{Endpoint: EpBatch, Role: "dev:host:swarm/conjur-plugin", Variables: []string{"dev:variable:apps/demo/db-password", "dev:variable:apps/shop/api-token"}, Status: 200},
		{Endpoint: EpSecret, Role: "dev:user:admin", Variables: []string{"dev:variable:apps/demo/db-password"}, Status: 200},
		{Endpoint: EpSecret, Status: 503},
	}
	if !slices.EqualFunc(got, want, func(a, b Request) bool {
		return a.Endpoint == b.Endpoint && a.Role == b.Role && a.Status == b.Status && slices.Equal(a.Variables, b.Variables)
	}) {
		t.Fatalf("requests %+v\nwant %+v", got, want)
	}
	e.srv.ResetRequests()
	if n := len(e.srv.Requests()); n != 0 {
		t.Fatalf("%d requests after ResetRequests", n)
	}
}
