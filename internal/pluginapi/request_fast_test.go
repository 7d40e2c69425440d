package pluginapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// decodeWithDecoder is ReadRequest without its json.Unmarshal fast path:
// the reference the fast path must agree with.
func decodeWithDecoder(body []byte) (Request, error) {
	if len(body) > MaxRequestBytes {
		return Request{}, errors.New("too large")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Request{}, errors.New("not an object")
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&req); err != nil {
		return Request{}, err
	}
	if dec.More() {
		return Request{}, errors.New("more than one value")
	}
	return req, nil
}

// FuzzDecodeFastPathAgrees: ReadRequest accepts exactly the bodies the
// Decoder alone accepts, and decodes them to the same request.
func FuzzDecodeFastPathAgrees(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.body) < 4096 {
			f.Add([]byte(tc.body))
		}
	}
	f.Add([]byte(`{"SecretName":"shop_db-password","SecretLabels":{"com.docker.stack.namespace":"shop"},"ServiceName":"shop_web","TaskImage":"registry.example.com/shop/web:1.4","NodeID":"n1","ServiceEndpointSpec":{"Mode":1}}`))
	f.Add([]byte(`{"SecretName":"x"}}`))
	f.Add([]byte(`{"SecretName":"x","SecretLabels":{"a":1}}`))
	f.Add([]byte("{\"SecretName\":\"\xff\"} \n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := ReadRequest(bytes.NewReader(body))
		want, wantErr := decodeWithDecoder(body)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("ReadRequest err %v, Decoder err %v", gotErr, wantErr)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); gotErr == nil && diff != "" {
			t.Fatalf("ReadRequest differs from the Decoder:\n%s", diff)
		}
	})
}
