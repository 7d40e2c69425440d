package driver

import (
	"context"
	"testing"
	"unicode"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// hostile holds what checkText lets through but a terminal or a log viewer
// would act on: a right-to-left override (U+202E), a first-strong isolate
// (U+2068), NEL (U+0085, a C1 control: a line break for some viewers), a
// C1 CSI (U+009B: an escape sequence for some terminals) and a line
// separator (U+2028).
const hostile = "web\u202egnp.exe\u2068x\u0085\u009b31m\u2028y"

// TestLogFieldsEscapeBidiAndC1: a request whose names and labels carry
// those characters reaches the audit line and the status journal with each
// of them escaped, as the policy escapes non-ASCII in reasons.
func TestLogFieldsEscapeBidiAndC1(t *testing.T) {
	d, logs := newTestDriver(t, demoFetcher(), &fakeResolver{})
	req := pluginapi.Request{SecretName: "db" + hostile, SecretLabels: map[string]string{"conjur.variable": "apps/demo/db-password"},
		ServiceName: "svc" + hostile, ServiceID: "id" + hostile, TaskID: "t" + hostile, NodeID: "n" + hostile, TaskImage: "img" + hostile}
	if err := req.Validate(); err != nil {
		t.Fatalf("the request must pass the protocol's checks to show the point: %v", err)
	}
	res := d.GetSecret(context.Background(), req)
	if res.Err != "" {
		t.Fatalf("answer: %s", res.Err)
	}
	lines := logs.All()
	if len(lines) == 0 {
		t.Fatal("no audit line")
	}
	for _, e := range lines {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok {
				if r := firstUnsafe(s); r != 0 {
					t.Errorf("log field %s holds U+%04X raw: %q", k, r, s)
				}
			}
		}
	}
	for _, want := range []string{`svc` + `web\u202egnp.exe\u2068x\u0085\u009b31m\u2028y`} {
		if got := d.Status().Recent[0].Service; got != want {
			t.Errorf("status journal service %q, want %q", got, want)
		}
	}
}

func firstUnsafe(s string) rune {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return r
		}
	}
	return 0
}
