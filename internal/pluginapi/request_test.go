package pluginapi

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// swarmBody is a GetSecret body as swarmkit v2 marshals it.
const swarmBody = `{"SecretName":"db_password","SecretLabels":{"conjur.variable":"apps/demo/db-password"},` +
	`"ServiceHostname":"{{.Service.Name}}","ServiceID":"s1","ServiceName":"web","ServiceLabels":{"com.docker.stack.namespace":"demo"},` +
	`"TaskID":"t1","TaskName":"web.1.t1","TaskImage":"nginx:1@sha256:abc","NodeID":"n1",` +
	`"ServiceEndpointSpec":{"Mode":1,"Ports":[{"Name":"http","Protocol":0,"TargetPort":80,"PublishedPort":8080,"PublishMode":0}]}}`

var decodeCases = []struct {
	name    string
	body    string
	want    Request
	wantErr string
}{
	{
		name: "ok/everything swarmkit sends",
		body: swarmBody,
		want: Request{
			SecretName: "db_password", SecretLabels: map[string]string{"conjur.variable": "apps/demo/db-password"},
			ServiceHostname: "{{.Service.Name}}", ServiceID: "s1", ServiceName: "web",
			ServiceLabels: map[string]string{"com.docker.stack.namespace": "demo"},
			TaskID:        "t1", TaskName: "web.1.t1", TaskImage: "nginx:1@sha256:abc", NodeID: "n1",
			ServiceEndpointSpec: &EndpointSpec{Mode: 1, Ports: []PortConfig{{Name: "http", TargetPort: 80, PublishedPort: 8080}}},
		},
	},
	{name: "ok/only the secret name", body: `{"SecretName":"x"}`, want: Request{SecretName: "x"}},
	{name: "ok/fields a newer Docker may add are ignored", body: ` {"SecretName":"x","FutureField":{"a":[1]}} `, want: Request{SecretName: "x"}},
	{name: "fail/empty body", body: "", wantErr: "request body is empty"},
	{name: "fail/whitespace only", body: " \n", wantErr: "request body is empty"},
	{name: "fail/array", body: `[{"SecretName":"x"}]`, wantErr: "not a JSON object"},
	{name: "fail/null", body: `null`, wantErr: "not a JSON object"},
	{name: "fail/truncated", body: `{"SecretName":"x"`, wantErr: "the JSON ends early"},
	{name: "fail/syntax", body: `{"SecretName":x}`, wantErr: "syntax error at byte"},
	{name: "fail/wrong type", body: `{"SecretName":"x","SecretLabels":["a"]}`, wantErr: `field "SecretLabels" has the wrong type`},
	{name: "fail/two values", body: `{"SecretName":"x"}{"SecretName":"y"}`, wantErr: "more than one JSON value"},
	{name: "fail/no secret name", body: `{"ServiceName":"web"}`, wantErr: "SecretName is empty"},
	{name: "fail/control character", body: `{"SecretName":"a\u0000b"}`, wantErr: "SecretName holds a control character"},
	{name: "fail/empty label key", body: `{"SecretName":"x","SecretLabels":{"":"v"}}`, wantErr: "SecretLabels has an empty key"},
	{name: "fail/label value too long", body: `{"SecretName":"x","ServiceLabels":{"k":"` + strings.Repeat("v", MaxLabelValLen+1) + `"}}`, wantErr: "ServiceLabels[k] is 4097 bytes long"},
	{name: "fail/name too long", body: `{"SecretName":"` + strings.Repeat("n", MaxNameLen+1) + `"}`, wantErr: "SecretName is 1025 bytes long"},
	{name: "fail/body too large", body: `{"SecretName":"x","Pad":"` + strings.Repeat("p", MaxRequestBytes) + `"}`, wantErr: "larger than 1048576 bytes"},
}

func TestDecodeRequest(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeAndValidate(strings.NewReader(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeRequestTooManyLabels(t *testing.T) {
	labels := map[string]string{}
	for i := 0; i <= MaxLabels; i++ {
		labels[strings.Repeat("k", i+1)] = "v"
	}
	body, _ := json.Marshal(Request{SecretName: "x", SecretLabels: labels})
	_, err := decodeAndValidate(bytes.NewReader(body))
	if err == nil || !strings.Contains(err.Error(), "SecretLabels has 257 labels") {
		t.Fatalf("error %v", err)
	}
}

func TestDecodeErrorsDoNotEchoInput(t *testing.T) {
	const marker = "SECRETISH-INPUT"
	for _, body := range []string{
		`{"SecretName":` + marker + `}`,
		`{"SecretName":"x","SecretLabels":"` + marker + `"}`,
		`"` + marker + `"`,
		`{"SecretName":"x"}` + marker,
	} {
		_, err := decodeAndValidate(strings.NewReader(body))
		if err == nil {
			t.Fatalf("no error for %q", body)
		}
		if strings.Contains(err.Error(), marker) {
			t.Errorf("error echoes the input: %v", err)
		}
	}
}

// FuzzDecodeRequest: any body either fails with an error or yields a request
// that validates and survives a JSON round trip unchanged.
func FuzzDecodeRequest(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.body) < 4096 {
			f.Add([]byte(tc.body))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeAndValidate(bytes.NewReader(body))
		if err != nil {
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("decoded request does not validate: %v", err)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		req2, err := decodeAndValidate(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if diff := cmp.Diff(req, req2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip changed the request:\n%s", diff)
		}
	})
}

// decodeAndValidate is what the driver does with a body: ReadRequest, then
// Validate.
func decodeAndValidate(r io.Reader) (Request, error) {
	req, err := ReadRequest(r)
	if err != nil {
		return Request{}, err
	}
	if err := req.Validate(); err != nil {
		return Request{}, err
	}
	return req, nil
}
