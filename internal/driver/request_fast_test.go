package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// decodeWithDecoder is decodeRequest without its json.Unmarshal fast path:
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

// FuzzDecodeFastPathAgrees: decodeRequest accepts exactly the bodies the
// Decoder alone accepts, and decodes them to the same request.
func FuzzDecodeFastPathAgrees(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.body) < 4096 {
			f.Add([]byte(tc.body))
		}
	}
	f.Add(benchRequestBody)
	f.Add([]byte(`{"SecretName":"x"}}`))
	f.Add([]byte(`{"SecretName":"x","SecretLabels":{"a":1}}`))
	f.Add([]byte("{\"SecretName\":\"\xff\"} \n"))
	f.Add([]byte(`{"SecretName":"a","secretname":"b"}`))
	f.Add([]byte(`{"SecretName":"a","SecretName":"b"}`))
	f.Add([]byte(`{"SecretLabels":{},"ServiceLabels":{"k":"v","k":"w"},"NodeID":"n"}`))
	f.Add([]byte(`{"SecretName":"s","ServiceEndpointSpec":{"Mode":1,"Ports":[{"Name":"p}","TargetPort":80}]}}`))
	f.Add([]byte(`{"SecretName":"s","ServiceEndpointSpec":null}`))
	f.Add([]byte(`{"SecretName":"s","Unknown":[1,{"a":"}"}]}`))
	f.Add([]byte(`{"SecretName":"s\u0041","TaskID":"t"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := decodeRequest(bytes.NewReader(body))
		want, wantErr := decodeWithDecoder(body)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("decodeRequest err %v, Decoder err %v", gotErr, wantErr)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); gotErr == nil && diff != "" {
			t.Fatalf("decodeRequest differs from the Decoder:\n%s", diff)
		}
	})
}

// Bodies near the ones Docker sends (seeds with bytes changed, inserted or
// removed, from a fixed random source) decode alike with and without the
// fast path.
func TestDecodeFastPathAgreesOnMutations(t *testing.T) {
	seeds := [][]byte{
		benchRequestBody,
		[]byte(`{"SecretName":"storm_v001","SecretLabels":{"conjur.variable":"apps/storm/v001"},"ServiceHostname":"svc-01",` +
			`"ServiceID":"service00000000000000000001","ServiceName":"svc-01","ServiceLabels":{"com.docker.stack.namespace":"storm"},` +
			`"TaskID":"task000000000000000000001","TaskName":"svc-01.1.task000000000000000000001",` +
			`"TaskImage":"registry.example.com/storm/app:1.0","NodeID":"node000000000000000000001"}`),
	}
	alphabet := []byte(`{}[]":,\ u0aZ19.-eE+tfnl` + "\x00\x1f\x7f\xc3\xa9\t\n")
	rng := rand.New(rand.NewPCG(7, 11))
	const n = 20000
	for i := range n {
		body := slices.Clone(seeds[i%len(seeds)])
		for range 1 + rng.IntN(3) {
			pos := rng.IntN(len(body) + 1)
			c := alphabet[rng.IntN(len(alphabet))]
			switch rng.IntN(4) {
			case 0:
				body = slices.Insert(body, pos, c)
			case 1:
				if pos < len(body) {
					body = slices.Delete(body, pos, pos+1)
				}
			case 2:
				if pos < len(body) {
					body[pos] = c
				}
			default: // flip the case of a key letter
				if pos < len(body) && body[pos] >= 'A' && body[pos] <= 'Z' {
					body[pos] += 'a' - 'A'
				}
			}
		}
		got, gotErr := decodeRequest(bytes.NewReader(body))
		want, wantErr := decodeWithDecoder(body)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: decodeRequest err %v, Decoder err %v", body, gotErr, wantErr)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); gotErr == nil && diff != "" {
			t.Fatalf("%q: decodeRequest differs from the Decoder:\n%s", body, diff)
		}
	}
}
