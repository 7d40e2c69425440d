package pluginapi

import (
	"fmt"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Response is the body of the GetSecret answer. Value is a redact.Bytes, so
// a Response prints and logs without it; Wire is the one way to the socket.
type Response struct {
	Value      redact.Bytes `json:",omitempty"`
	Err        string       `json:",omitempty"`
	DoNotReuse bool         `json:",omitempty"`
}

// WireResponse is a Response as Swarm reads it: Value travels as base64 (Go's
// []byte JSON encoding), which is what swarmkit decodes. Only the server
// that answers Swarm builds one, to encode it at once.
type WireResponse struct {
	Value      []byte `json:",omitempty"`
	Err        string `json:",omitempty"`
	DoNotReuse bool   `json:",omitempty"`
}

// Wire returns r as it goes on the socket.
func (r Response) Wire() WireResponse {
	return WireResponse{Value: r.Value.Reveal(), Err: r.Err, DoNotReuse: r.DoNotReuse}
}

// String summarizes the answer: its Err, or the value's length.
func (r Response) String() string {
	if r.Err != "" {
		return fmt.Sprintf("Response{Err: %q}", r.Err)
	}
	return fmt.Sprintf("Response{Value: [%d bytes redacted], DoNotReuse: %t}", len(r.Value), r.DoNotReuse)
}
