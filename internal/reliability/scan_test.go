package reliability

import (
	"encoding/base64"
	"fmt"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLeakScanFindsSecrets: the scan the matrix relies on finds a text and a
// binary secret however a log line carries them, so a clean scan means
// something.
func TestLeakScanFindsSecrets(t *testing.T) {
	text, bin := randomValue("text"), randomBinary()
	set := &secretSet{}
	set.add(text)
	set.add(bin)
	for _, tc := range []struct {
		name  string
		field zap.Field
	}{
		{"found/text as a string", zap.String("v", string(text))},
		{"found/text inside an error", zap.Error(fmt.Errorf("fetch failed: %s", text))},
		{"found/binary as a string", zap.String("v", string(bin))},
		{"found/binary as bytes", zap.Binary("v", bin)},
		{"found/binary base64", zap.String("v", base64.StdEncoding.EncodeToString(bin))},
		{"found/binary quoted", zap.String("v", fmt.Sprintf("%q", bin))},
		{"found/binary hex", zap.String("v", fmt.Sprintf("%x", bin))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			zap.New(core).Info("line", tc.field)
			enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
			e := logs.All()[0]
			buf, err := enc.EncodeEntry(e.Entry, e.Context)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.find(buf.String())) == 0 {
				t.Fatalf("the scan missed the secret in %s", buf.String())
			}
		})
	}
	if hits := set.find(`{"msg":"clean line","code":"TIMEOUT"}`); len(hits) != 0 {
		t.Fatalf("the scan flags a clean line: %v", hits)
	}
}
