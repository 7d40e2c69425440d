package redact_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

const secret = "s3cr3t-value"

// holder is a container type with no printing methods of its own.
type holder struct {
	Name  string
	Key   redact.String
	Value redact.Bytes
	Ptr   *redact.String
}

func newHolder() holder {
	k := redact.String(secret)
	return holder{Name: "db", Key: redact.String(secret), Value: redact.Bytes(secret), Ptr: &k}
}

var verbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-10v"}

func TestEveryVerbRedacts(t *testing.T) {
	h := newHolder()
	for _, verb := range verbs {
		for _, x := range []any{h.Key, h.Value, h, &h, []redact.String{h.Key}, map[string]redact.Bytes{"v": h.Value}} {
			out := fmt.Sprintf(verb, x)
			checkRedacted(t, verb, out)
		}
	}
}

func TestContainersPrintNormally(t *testing.T) {
	h := newHolder()
	if got := fmt.Sprintf("%+v", h); !strings.Contains(got, "Name:db") {
		t.Errorf("%%+v lost the ordinary field: %s", got)
	}
	if got, want := fmt.Sprintf("%v", holder{Name: "db"}), "{db   <nil>}"; got != want {
		t.Errorf("an empty secret prints %q, want %q (nothing, so logs say it is unset)", got, want)
	}
}

func TestJSONRedacts(t *testing.T) {
	h := newHolder()
	for _, x := range []any{h.Key, h.Value, h, &h} {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		checkRedacted(t, "json", string(b))
	}
	b, err := json.Marshal(holder{Name: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"Name":"db","Key":"","Value":"","Ptr":null}`; got != want {
		t.Errorf("empty secrets encode as %s, want %s", got, want)
	}
}

func TestTextAndYAMLRedact(t *testing.T) {
	h := newHolder()
	text, err := h.Key.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	checkRedacted(t, "text", string(text))
	y, err := yaml.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	checkRedacted(t, "yaml", string(y))
}

func TestZapRedacts(t *testing.T) {
	h := newHolder()
	var buf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel))
	fields := []zap.Field{
		zap.Any("key", h.Key), zap.Any("value", h.Value),
		zap.Stringer("key_str", h.Key), zap.Stringer("value_str", h.Value),
		zap.Any("holder", h), zap.Reflect("reflect", h), zap.Any("ptr", &h),
	}
	for _, f := range fields {
		buf.Reset()
		log.Info("x", f)
		checkRedacted(t, "zap "+f.Key, buf.String())
	}
	buf.Reset()
	log.Info("x", zap.Any("empty", redact.String("")))
	if !strings.Contains(buf.String(), `"empty":""`) {
		t.Errorf("an empty secret logs as %s, want \"\"", buf.String())
	}
}

func TestRevealAndConversion(t *testing.T) {
	h := newHolder()
	if h.Key.Reveal() != secret || string(h.Key) != secret {
		t.Errorf("String does not give back the secret")
	}
	if string(h.Value.Reveal()) != secret || !bytes.Equal(h.Value, []byte(secret)) {
		t.Errorf("Bytes does not give back the secret")
	}
}

func checkRedacted(t *testing.T, how, out string) {
	t.Helper()
	if strings.Contains(out, secret) || strings.Contains(strings.ToLower(out), fmt.Sprintf("%x", secret)) {
		t.Errorf("%s shows the secret: %s", how, out)
	}
	if !strings.Contains(out, redact.Marker) {
		t.Errorf("%s has no %s marker: %s", how, redact.Marker, out)
	}
}
