package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// getSecretSeeds seed FuzzHandleGetSecret: a body as swarmkit v2 marshals
// it, and bodies that fail decoding or validation in each way (the decoding
// cases themselves are pluginapi's tests).
var getSecretSeeds = []string{
	`{"SecretName":"db_password","SecretLabels":{"conjur.variable":"apps/demo/db-password"},` +
		`"ServiceHostname":"{{.Service.Name}}","ServiceID":"s1","ServiceName":"web","ServiceLabels":{"com.docker.stack.namespace":"demo"},` +
		`"TaskID":"t1","TaskName":"web.1.t1","TaskImage":"nginx:1@sha256:abc","NodeID":"n1",` +
		`"ServiceEndpointSpec":{"Mode":1,"Ports":[{"Name":"http","Protocol":0,"TargetPort":80,"PublishedPort":8080,"PublishMode":0}]}}`,
	`{"SecretName":"x"}`, ` {"SecretName":"x","FutureField":{"a":[1]}} `, "", " \n", `[{"SecretName":"x"}]`, `null`,
	`{"SecretName":"x"`, `{"SecretName":x}`, `{"SecretName":"x","SecretLabels":["a"]}`, `{"SecretName":"x"}{"SecretName":"y"}`,
	`{"ServiceName":"web"}`, `{"SecretName":"a\u0000b"}`, `{"SecretName":"x","SecretLabels":{"":"v"}}`,
}

// FuzzHandleGetSecret: whatever the body, the driver answers (never panics)
// with either a value or an Err that starts with a code, never both.
func FuzzHandleGetSecret(f *testing.F) {
	for _, body := range getSecretSeeds {
		f.Add([]byte(body))
	}
	d, err := New(Options{Resolver: &fakeResolver{}, Conjur: demoFetcher(), Logger: zap.NewNop()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res := d.HandleGetSecret(context.Background(), bytes.NewReader(body))
		switch {
		case res.Err != "" && res.Value != nil:
			t.Fatalf("both a value and an Err: %v", res)
		case res.Err == "" && len(res.Value) == 0:
			t.Fatalf("neither a value nor an Err")
		case res.Err != "" && !strings.HasPrefix(res.Err, "conjur-swarm ["):
			t.Fatalf("Err without a code: %q", res.Err)
		}
	})
}

// A request whose every label is invalid, each with a key of the largest
// size, must not turn into an Err, a log line and a status record hundreds of
// KiB long.
func TestInvalidRequestErrIsBounded(t *testing.T) {
	labels := map[string]string{}
	for i := range pluginapi.MaxLabels {
		labels[fmt.Sprintf("%04d%s", i, strings.Repeat("k", pluginapi.MaxLabelKeyLen-4))] = "\x01"
	}
	body, err := json.Marshal(pluginapi.Request{SecretName: "s", SecretLabels: labels})
	if err != nil {
		t.Fatal(err)
	}
	d, logs := newTestDriver(t, demoFetcher(), &fakeResolver{})
	res := d.HandleGetSecret(t.Context(), bytes.NewReader(body))
	if res.Err == "" || !strings.Contains(res.Err, "control character") {
		t.Fatalf("Err = %.200q, want the problems", res.Err)
	}
	if n := len(res.Err); n > 4096 {
		t.Errorf("Err is %d bytes long", n)
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && len(s) > 20<<10 {
				t.Errorf("log field %s is %d bytes long", k, len(s))
			}
		}
	}
	st, err := json.Marshal(d.Status())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) > 64<<10 {
		t.Errorf("status is %d bytes long after one request", len(st))
	}
}
