package pluginapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// Limits on what a GetSecret request may hold. Docker's own limits are far
// lower (secret names are at most 64 characters); these bound memory and log
// size, not what Docker can send.
const (
	MaxRequestBytes = 1 << 20 // body size
	MaxNameLen      = 1024    // secret, service, task, node names and ids, image
	MaxLabels       = 256     // per label map
	MaxLabelKeyLen  = 1024
	MaxLabelValLen  = 4096
)

// Request is the body of POST /SecretProvider.GetSecret as swarmkit's
// manager/drivers sends it. go-plugins-helpers' secrets.Request lacks NodeID,
// so the driver decodes into this type. Empty fields are omitted on the wire.
type Request struct {
	SecretName          string            `json:",omitempty"`
	SecretLabels        map[string]string `json:",omitempty"`
	ServiceHostname     string            `json:",omitempty"`
	ServiceID           string            `json:",omitempty"`
	ServiceName         string            `json:",omitempty"`
	ServiceLabels       map[string]string `json:",omitempty"`
	TaskID              string            `json:",omitempty"`
	TaskName            string            `json:",omitempty"`
	TaskImage           string            `json:",omitempty"`
	NodeID              string            `json:",omitempty"`
	ServiceEndpointSpec *EndpointSpec     `json:",omitempty"`
}

// EndpointSpec is the task's endpoint spec (unused by the policy; decoded so
// that a malformed one is reported rather than ignored).
type EndpointSpec struct {
	Mode  int32        `json:",omitempty"`
	Ports []PortConfig `json:",omitempty"`
}

// PortConfig is one published port of the task's service.
type PortConfig struct {
	Name          string `json:",omitempty"`
	Protocol      int32  `json:",omitempty"`
	TargetPort    uint32 `json:",omitempty"`
	PublishedPort uint32 `json:",omitempty"`
	PublishMode   int32  `json:",omitempty"`
}

// ReadRequest reads one GetSecret request of at most MaxRequestBytes, without
// validating its fields (the driver audits an invalid request under its
// names; call Validate). Unknown fields are ignored so that a newer Docker
// that sends more does not break every task; anything else that is not one
// well-formed JSON object of the expected shape is an error (never a panic),
// whose text does not echo the body.
func ReadRequest(r io.Reader) (Request, error) {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer putBodyBuffer(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(r, MaxRequestBytes+1)); err != nil {
		return Request{}, fmt.Errorf("reading the request body: %w", err)
	}
	data := buf.Bytes()
	if len(data) > MaxRequestBytes {
		return Request{}, fmt.Errorf("request body is larger than %d bytes", MaxRequestBytes)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return Request{}, errors.New("request body is empty; want a JSON object")
	}
	if trimmed[0] != '{' {
		return Request{}, errors.New("request body is not a JSON object")
	}
	// The usual body is one well-formed object: json.Unmarshal decodes it
	// straight from the buffer. Anything it refuses goes through the
	// Decoder, whose verdict and messages are the ones this function has
	// always given (Unmarshal accepts exactly the bodies the Decoder path
	// accepts with nothing after the value).
	var req Request
	if err := json.Unmarshal(trimmed, &req); err == nil {
		return req, nil
	}
	req = Request{}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("request body is not valid JSON for GetSecret: %s", describeJSONError(err))
	}
	if dec.More() {
		return Request{}, errors.New("request body holds more than one JSON value")
	}
	return req, nil
}

// bodyBuffers holds the buffers GetSecret bodies are read into; decoding
// copies every string out, so a buffer is reused as soon as it is decoded.
var bodyBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 2048)) }}

// putBodyBuffer returns buf to the pool unless an unusually large body grew
// it (the pool then does not keep a large buffer alive).
func putBodyBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 {
		bodyBuffers.Put(buf)
	}
}

// describeJSONError names what was wrong without echoing the input (a
// malformed body could hold anything).
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type (%s, want %s)", typ.Field, typ.Value, typ.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	default:
		return "malformed JSON"
	}
}

// Validate checks the fields the driver relies on: SecretName is required,
// every string is valid UTF-8 without control characters and of sane length,
// and label maps are bounded. Every problem is reported at once.
func (r *Request) Validate() error {
	var errs []error
	if r.SecretName == "" {
		errs = append(errs, errors.New("SecretName is empty"))
	}
	for _, f := range []struct{ name, val string }{
		{"SecretName", r.SecretName},
		{"ServiceHostname", r.ServiceHostname},
		{"ServiceID", r.ServiceID},
		{"ServiceName", r.ServiceName},
		{"TaskID", r.TaskID},
		{"TaskName", r.TaskName},
		{"TaskImage", r.TaskImage},
		{"NodeID", r.NodeID},
	} {
		if err := checkText(f.val, MaxNameLen); err != nil {
			errs = append(errs, fmt.Errorf("%s %w", f.name, err))
		}
	}
	errs = append(errs, checkLabels("SecretLabels", r.SecretLabels)...)
	errs = append(errs, checkLabels("ServiceLabels", r.ServiceLabels)...)
	return errors.Join(errs...)
}

func checkLabels(field string, labels map[string]string) []error {
	var errs []error
	if len(labels) > MaxLabels {
		return []error{fmt.Errorf("%s has %d labels, more than %d", field, len(labels), MaxLabels)}
	}
	for k, v := range labels {
		if k == "" {
			errs = append(errs, fmt.Errorf("%s has an empty key", field))
			continue
		}
		if err := checkText(k, MaxLabelKeyLen); err != nil {
			errs = append(errs, fmt.Errorf("%s key %w", field, err))
			continue
		}
		if err := checkText(v, MaxLabelValLen); err != nil {
			errs = append(errs, fmt.Errorf("%s[%s] %w", field, k, err))
		}
	}
	return errs
}

func checkText(s string, maxLen int) error {
	if len(s) > maxLen {
		return fmt.Errorf("is %d bytes long, more than %d", len(s), maxLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return errors.New("holds a control character")
		}
	}
	return nil
}
