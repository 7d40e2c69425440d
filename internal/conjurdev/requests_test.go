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

// Once the log is full, it keeps the last maxRequests requests in the order
// they finished.
func TestRequestLogKeepsTheLastInOrder(t *testing.T) {
	var l requestLog
	for i := range maxRequests + 7 {
		l.add(Request{Status: i})
	}
	got := l.ordered()
	if len(got) != maxRequests || got[0].Status != 7 || got[len(got)-1].Status != maxRequests+6 {
		t.Fatalf("%d requests from %d to %d; want %d from 7 to %d", len(got), got[0].Status, got[len(got)-1].Status, maxRequests, maxRequests+6)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Status != got[i-1].Status+1 {
			t.Fatalf("request %d is %d after %d: out of order", i, got[i].Status, got[i-1].Status)
		}
	}
}

// The cost of logging one request once the log is full, which every request
// of a long benchmark run pays (make bench's stand-in answers 100,000s).
func BenchmarkRequestLogFull(b *testing.B) {
	var l requestLog
	for i := range maxRequests {
		l.add(Request{Status: i})
	}
	r := Request{Endpoint: EpSecret, Role: "dev:host:h", Variables: []string{"dev:variable:v"}, Status: 200}
	for b.Loop() {
		l.add(r)
	}
}
