package driver

import "encoding/json"

// fastDecode decodes the GetSecret bodies Docker sends, and only those: one
// object whose keys are Request's field names spelled exactly, each at most
// once, with plain ASCII strings (no escapes, no control or non-ASCII bytes)
// or objects of them, and ServiceEndpointSpec as an object (decoded by
// encoding/json). For anything else it returns ok=false and decodeRequest
// uses encoding/json, whose result for these bodies is the same
// (FuzzDecodeFastPathAgrees compares them). It never fails: a body it does
// not recognise is simply not its to decode.
func fastDecode(data []byte) (req Request, ok bool) {
	p := fastParser{data: data}
	if !p.byte('{') {
		return Request{}, false
	}
	var seen uint16
	first := true
	for {
		p.ws()
		if p.byte('}') {
			break
		}
		if !first && !p.byte(',') {
			return Request{}, false
		}
		first = false
		p.ws()
		key, ok := p.str()
		if !ok {
			return Request{}, false
		}
		p.ws()
		if !p.byte(':') {
			return Request{}, false
		}
		p.ws()
		bit, ok := fieldBit(key)
		if !ok || seen&bit != 0 {
			return Request{}, false
		}
		seen |= bit
		switch key {
		case "SecretLabels", "ServiceLabels":
			m, ok := p.strMap()
			if !ok {
				return Request{}, false
			}
			if key == "SecretLabels" {
				req.SecretLabels = m
			} else {
				req.ServiceLabels = m
			}
		case "ServiceEndpointSpec":
			raw, ok := p.object()
			if !ok {
				return Request{}, false
			}
			var spec EndpointSpec
			if json.Unmarshal(raw, &spec) != nil {
				return Request{}, false
			}
			req.ServiceEndpointSpec = &spec
		default:
			s, ok := p.str()
			if !ok {
				return Request{}, false
			}
			*req.stringField(key) = s
		}
	}
	p.ws()
	if p.i != len(p.data) {
		return Request{}, false
	}
	return req, true
}

var fieldBits = map[string]uint16{
	"SecretName": 1 << 0, "SecretLabels": 1 << 1, "ServiceHostname": 1 << 2, "ServiceID": 1 << 3,
	"ServiceName": 1 << 4, "ServiceLabels": 1 << 5, "TaskID": 1 << 6, "TaskName": 1 << 7,
	"TaskImage": 1 << 8, "NodeID": 1 << 9, "ServiceEndpointSpec": 1 << 10,
}

func fieldBit(key string) (uint16, bool) {
	b, ok := fieldBits[key]
	return b, ok
}

// stringField is the string field named key (one of fieldBits' string
// fields).
func (r *Request) stringField(key string) *string {
	switch key {
	case "SecretName":
		return &r.SecretName
	case "ServiceHostname":
		return &r.ServiceHostname
	case "ServiceID":
		return &r.ServiceID
	case "ServiceName":
		return &r.ServiceName
	case "TaskID":
		return &r.TaskID
	case "TaskName":
		return &r.TaskName
	case "TaskImage":
		return &r.TaskImage
	}
	return &r.NodeID
}

type fastParser struct {
	data []byte
	i    int
}

func (p *fastParser) ws() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) byte(c byte) bool {
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes.
func (p *fastParser) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			s := string(p.data[start:p.i])
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return "", false
		}
		p.i++
	}
	return "", false
}

// strMap reads an object of strings (an empty one gives an empty map, as
// encoding/json does).
func (p *fastParser) strMap() (map[string]string, bool) {
	if !p.byte('{') {
		return nil, false
	}
	m := map[string]string{}
	p.ws()
	if p.byte('}') {
		return m, true
	}
	for {
		p.ws()
		k, ok := p.str()
		if !ok {
			return nil, false
		}
		p.ws()
		if !p.byte(':') {
			return nil, false
		}
		p.ws()
		v, ok := p.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		p.ws()
		if p.byte('}') {
			return m, true
		}
		if !p.byte(',') {
			return nil, false
		}
	}
}

// object returns the raw text of the object that starts here (brackets
// matched outside strings); encoding/json checks it.
func (p *fastParser) object() ([]byte, bool) {
	if p.i >= len(p.data) || p.data[p.i] != '{' {
		return nil, false
	}
	start, depth, inStr := p.i, 0, false
	for ; p.i < len(p.data); p.i++ {
		c := p.data[p.i]
		switch {
		case inStr && c == '\\':
			p.i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				p.i++
				return p.data[start:p.i], true
			}
		}
	}
	return nil, false
}
