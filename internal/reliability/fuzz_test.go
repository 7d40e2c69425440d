package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjur/conjurtest"
	"github.com/cyberark/conjur-swarm/internal/driver"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// fuzzSecret is the value the fake Conjur returns for every variable; the
// targets check that it never reaches an Err or a log line.
const fuzzSecret = "fuzz-secret-value-5c1e0a7d93"

// fuzzMapping has every kind of template: secret-side labels (may hold /),
// the stack, and service-side values (one segment only).
const fuzzMapping = mappingV2 + `  - name: stack-secrets
    match:
      secret_labels: {com.docker.stack.namespace: "*"}
    variable: "apps/{stack}/{secret_key}"
    allow:
      service_labels: {com.docker.stack.namespace: "{stack}"}
  - name: per-service
    match:
      secret_labels: {per.service: "*"}
    variable: "apps/{service}/{service_label:tier}/{secret_label:per.service}"
`

// fuzzConjur is a fake Conjur that answers the secret, or NOT_FOUND for ids
// ending in "missing", and records the ids it is asked for.
func fuzzConjur() *conjurtest.Fake {
	return &conjurtest.Fake{Answer: func(ref conjur.Ref) (conjur.Value, error) {
		if strings.HasSuffix(ref.ID, "missing") {
			return conjur.Value{}, &conjur.Error{Code: errcode.NotFound, Variable: ref.ID, Msg: "variable " + ref.ID + " does not exist"}
		}
		return conjur.Value{Data: []byte(fuzzSecret)}, nil
	}}
}

// safeID is the mapping's safety contract for a resolved id (DESIGN.md): under
// apps/, no empty, "." or ".." segment, no control character, whitespace or
// any of , % ? # \.
func safeID(id string) bool {
	if !strings.HasPrefix(id, "apps/") || strings.ContainsAny(id, ",%?#\\") {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	for _, seg := range strings.Split(id, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

func logText(t *testing.T, logs *observer.ObservedLogs) string {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	var b strings.Builder
	for _, e := range logs.TakeAll() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(buf.Bytes())
		buf.Free()
	}
	return b.String()
}

// FuzzGetSecretBody feeds arbitrary bodies to the GetSecret handler (the
// request decoder, the mapping policy's matching and template expansion,
// the answer) with a fake Conjur. Whatever the body: no panic; an answer is
// either the value with no Err or an Err "conjur-swarm [CODE] ..." with no
// value; Conjur is asked only for ids that meet the safety rules and lie
// under within; the value never appears in Err or the log.
func FuzzGetSecretBody(f *testing.F) {
	pol, err := policy.Parse("fuzz.yml", []byte(fuzzMapping))
	if err != nil {
		f.Fatal(err)
	}
	seeds := []pluginapi.Request{
		{SecretName: "db", SecretLabels: map[string]string{"conjur.variable": "apps/rel/db-password"}},
		{SecretName: "db", SecretLabels: map[string]string{"conjur.variable": "apps/../restricted/x"}},
		{SecretName: "db", SecretLabels: map[string]string{"conjur.variable": "apps/rel/missing"}},
		{SecretName: "k", SecretLabels: map[string]string{"rel.key": "a/b"}},
		{SecretName: "shop_db", SecretLabels: map[string]string{"com.docker.stack.namespace": "shop"},
			ServiceName: "shop_web", ServiceLabels: map[string]string{"com.docker.stack.namespace": "shop"}},
		{SecretName: "p", SecretLabels: map[string]string{"per.service": "x"}, ServiceName: "web",
			ServiceLabels: map[string]string{"tier": "../front"}, TaskImage: "nginx", NodeID: "n1"},
	}
	for _, r := range seeds {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte(`{"SecretName":"a\u0000","SecretLabels":{"conjur.variable":"apps/x"}}`))
	f.Add([]byte(`{"SecretName":["x"]}`))
	f.Add([]byte(`{`))

	core, logs := observer.New(zapcore.DebugLevel)
	fetcher := fuzzConjur()
	d, err := driver.New(driver.Options{Resolver: pol, Conjur: fetcher, Logger: zap.New(core)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fetcher.TakeAsked()
		res := d.HandleGetSecret(context.Background(), bytes.NewReader(body))
		switch {
		case res.Err == "" && string(res.Value) != fuzzSecret:
			t.Fatalf("no Err and not the value (%d bytes)", len(res.Value))
		case res.Err != "" && (len(res.Value) != 0 || errCode(res.Err) == ""):
			t.Fatalf("Err %q without a code, or with a value", res.Err)
		}
		if strings.Contains(res.Err, fuzzSecret) {
			t.Fatal("the value appears in Err")
		}
		if strings.Contains(logText(t, logs), fuzzSecret) {
			t.Fatal("the value appears in the log")
		}
		for _, id := range fetcher.TakeAsked() {
			if !safeID(id) {
				t.Fatalf("Conjur was asked for the unsafe id %q", id)
			}
		}
	})
}

// FuzzBootstrapBody feeds handoff bodies built from a fuzzed login, key and
// shape to the bootstrap endpoint's handler. Whatever they hold: no panic,
// a refusal has a code, and the key (or JWT) never appears in the answer or
// the log, whether the body parses or not.
func FuzzBootstrapBody(f *testing.F) {
	f.Add("host/swarm/conjur-plugin", "good-key-0123456789", uint8(0))
	f.Add("host/swarm/conjur-plugin", "wrong-key-0123456789", uint8(0))
	f.Add("host/other", "good-key-0123456789", uint8(1))
	f.Add("", "eyJhbGciOiJSUzI1NiJ9.e30.sig", uint8(2))
	f.Add("host/x\n", "key with spaces", uint8(3))
	f.Add("h", "{\"", uint8(4))

	core, logs := observer.New(zapcore.DebugLevel)
	d, err := driver.New(driver.Options{Resolver: policy.Builtin(), Conjur: &conjurtest.Fake{AcceptKey: "K3Y-good-key-0123456789"},
		Account: "dev", ApplianceURLs: []string{"https://conjur.test"}, Logger: zap.New(core)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, login, key string, shape uint8) {
		key = "K3Y-" + key // a marker no fixed message text holds
		var body []byte
		switch shape % 5 {
		case 0:
			body, _ = json.Marshal(map[string]string{"login": login, "api_key": key, "account": "dev", "appliance_url": "https://conjur.test"})
		case 1:
			body, _ = json.Marshal(map[string]any{"login": login, "api_key": key, "extra": []int{1}})
		case 2:
			body, _ = json.Marshal(map[string]string{"jwt": key, "account": login, "appliance_url": "https://conjur.test"})
		case 3:
			body = []byte(login + ":" + key) // not JSON
		case 4:
			body = []byte(`{"login":"` + login + `","api_key":"` + key) // truncated, raw
		}
		ans, status := d.Bootstrap(context.Background(), bytes.NewReader(body))
		if ans.OK != (status == 200) || !ans.OK && errCode(ans.Err) == "" {
			t.Fatalf("answer %+v with status %d", ans, status)
		}
		text := logText(t, logs)
		if strings.Contains(login, key) {
			return // the key is part of the login itself: nothing to tell apart
		}
		q, _ := json.Marshal(key)
		for _, form := range []string{key, string(q[1 : len(q)-1])} {
			if strings.Contains(ans.Err, form) || strings.Contains(ans.Fingerprint, form) {
				t.Fatalf("the key appears in the answer %+v", ans)
			}
			if strings.Contains(text, form) {
				t.Fatal("the key appears in the log")
			}
		}
	})
}
