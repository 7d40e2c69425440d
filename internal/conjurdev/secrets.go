package conjurdev

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// batchWantsBase64 is how the batch endpoint reads it, as Conjur does:
// the whole header must be "base64".
func batchWantsBase64(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("Accept-Encoding")), "base64")
}

// rubyBase64 encodes as Ruby's Base64.encode64, which Conjur's batch
// endpoint uses: standard alphabet, a newline after every 60 characters
// and at the end. Decoders ignore the newlines.
func rubyBase64(b []byte) string {
	enc := base64.StdEncoding.EncodeToString(b)
	var sb strings.Builder
	for len(enc) > 60 {
		sb.WriteString(enc[:60])
		sb.WriteByte('\n')
		enc = enc[60:]
	}
	sb.WriteString(enc)
	sb.WriteByte('\n')
	return sb.String()
}

func secretNotFound(full string) *StatusError {
	return &StatusError{
		Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("CONJ00076E Variable %s is empty or not found.", full),
	}
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request, c caller) {
	if r.PathValue("kind") != "variable" {
		noRoute(w, r) // Conjur routes only variables here
		return
	}
	full := r.PathValue("account") + ":" + r.PathValue("kind") + ":" + r.PathValue("id")
	noteVariables(w, []string{full})
	version := 0
	var q url.Values
	if r.URL.RawQuery != "" { // the plugin's fetches have none: no parse
		q = r.URL.Query()
	}
	if q.Has("version") {
		// Conjur: Integer(version); a version that does not parse is 422,
		// one that does not exist (0 and negatives included) is 404.
		n, err := strconv.Atoi(strings.TrimSpace(q.Get("version")))
		if err != nil {
			writeError(w, argumentError("invalid type for parameter 'version'"))
			return
		}
		if n < 1 {
			writeError(w, secretNotFound(full))
			return
		}
		version = n
	}
	s.mu.RLock()
	res, ok := s.st.resources[full]
	// execute implies visible: visible, which looks at every privilege,
	// is only asked when execute is missing (404 or 403).
	if !ok || !s.st.can(c.role, res, "execute") {
		visible := ok && s.st.visible(c.role, res)
		s.mu.RUnlock()
		if !visible {
			writeError(w, secretNotFound(full))
			return
		}
		w.WriteHeader(http.StatusForbidden)
		return
	}
	var sv secretVersion
	if version == 0 {
		sv, ok = res.latest()
	} else {
		sv, ok = res.version(version)
	}
	mime := res.mimeType()
	s.mu.RUnlock()
	if !ok {
		writeError(w, secretNotFound(full))
		return
	}
	// Stored values are never modified in place, so writing after the
	// unlock is safe.
	w.Header().Set("Content-Type", mime)
	w.Header().Set("Content-Length", strconv.Itoa(len(sv.value)))
	_, _ = w.Write(sv.value)
}

// blank is Ruby's String#blank?: empty or only whitespace.
func blank(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	return len(bytes.TrimFunc(b, unicode.IsSpace)) == 0
}

func (s *Server) setSecret(w http.ResponseWriter, r *http.Request, c caller) {
	if r.PathValue("kind") != "variable" {
		noRoute(w, r) // Conjur takes values for variables and public keys only
		return
	}
	full := r.PathValue("account") + ":" + r.PathValue("kind") + ":" + r.PathValue("id")
	value, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeError(w, &StatusError{Status: http.StatusBadRequest, Code: "bad_request", Message: "could not read the value"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, ok := s.st.resources[full]
	if !ok || !s.st.visible(c.role, res) {
		writeError(w, notFound(full))
		return
	}
	if !s.st.can(c.role, res, "update") {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if blank(value) {
		writeError(w, &StatusError{Status: http.StatusUnprocessableEntity, Code: "argument_error", Message: "'value' may not be empty"})
		return
	}
	if len(value) > maxBody {
		writeError(w, &StatusError{Status: http.StatusRequestEntityTooLarge, Code: "argument_error", Message: "the value is larger than 10 MiB"})
		return
	}
	res.addValue(value)
	s.saveLocked()
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request, c caller) {
	raw := r.URL.Query().Get("variable_ids")
	ids := strings.Split(raw, ",")
	for len(ids) > 0 && ids[len(ids)-1] == "" { // as Ruby's String#split
		ids = ids[:len(ids)-1]
	}
	noteVariables(w, ids)
	if len(ids) == 0 || slices.Contains(ids, "") {
		writeError(w, argumentError("variable_ids"))
		return
	}
	// As Conjur: find the ids that exist (any kind), refuse the whole batch
	// with 403 when the caller lacks execute on any of them, and only then
	// answer 404 for the first id that does not exist. A repeated id counts
	// as missing (Conjur compares the number of ids with the number of rows
	// found, and then names none of them).
	b64 := batchWantsBase64(r)
	s.mu.RLock()
	vars := make([]*resource, 0, len(ids))
	var seen map[string]bool // for long batches; a short one is searched
	if len(ids) > 32 {
		seen = make(map[string]bool, len(ids))
	}
	for i, id := range ids {
		repeated := seen[id]
		if seen == nil {
			repeated = slices.Contains(ids[:i], id)
		} else {
			seen[id] = true
		}
		if res, ok := s.st.resources[id]; ok && !repeated {
			vars = append(vars, res)
		}
	}
	for _, res := range vars {
		if !s.st.can(c.role, res, "execute") {
			s.mu.RUnlock()
			w.WriteHeader(http.StatusForbidden)
			return
		}
	}
	if len(vars) != len(ids) {
		missing := ""
		for _, id := range ids {
			if _, ok := s.st.resources[id]; !ok {
				missing = id
				break
			}
		}
		s.mu.RUnlock()
		writeError(w, secretNotFound(missing))
		return
	}
	values := make([]batchValue, len(vars))
	for i, res := range vars {
		sv, ok := res.latest()
		if !ok {
			s.mu.RUnlock()
			writeError(w, secretNotFound(res.id))
			return
		}
		if !b64 && !utf8.Valid(sv.value) {
			s.mu.RUnlock()
			writeError(w, &StatusError{Status: http.StatusNotAcceptable, Code: "not_acceptable",
				Message: "CONJ00074E Issue encoding secret into JSON format, try including 'Accept-Encoding: base64' header in request."})
			return
		}
		// Stored values are never modified in place: they are read after
		// the unlock.
		values[i] = batchValue{id: res.id, value: sv.value}
	}
	s.mu.RUnlock()
	if b64 {
		w.Header().Set("Content-Encoding", "base64")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(batchJSON(values, b64))
}

// batchValue is one variable of a batch answer.
type batchValue struct {
	id    string
	value []byte
}

// batchJSON is the batch answer: a JSON object of the values by id, in
// Ruby's Base64.encode64 when b64, written as writeJSON writes a
// map[string]string (keys sorted, no HTML escaping), byte for byte. Ids and
// values of printable ASCII are written directly, the rest through
// encoding/json.
func batchJSON(values []batchValue, b64 bool) []byte {
	slices.SortFunc(values, func(a, b batchValue) int { return strings.Compare(a.id, b.id) })
	size := 2
	for _, v := range values {
		if !plainJSON(v.id) || (!b64 && !plainJSON(string(v.value))) {
			return batchJSONSlow(values, b64)
		}
		n := len(v.value)
		if b64 {
			n = base64.StdEncoding.EncodedLen(n)
			n += 2 * (n/60 + 1) // a newline every 60 characters, escaped
		}
		size += len(v.id) + n + 6
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, v := range values {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, v.id...)
		out = append(out, '"', ':', '"')
		if b64 {
			out = appendRubyBase64JSON(out, v.value)
		} else {
			out = append(out, v.value...)
		}
		out = append(out, '"')
	}
	return append(out, '}')
}

// plainJSON reports whether s is printable ASCII that a JSON string holds
// as it is: no control character, quote or backslash.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendRubyBase64JSON appends rubyBase64(b) as the inside of a JSON
// string, each newline escaped. 45 bytes are 60 characters of base64, so
// the value is encoded 45 bytes at a time.
func appendRubyBase64JSON(out, b []byte) []byte {
	for len(b) > 45 {
		out = base64.StdEncoding.AppendEncode(out, b[:45])
		out = append(out, '\\', 'n')
		b = b[45:]
	}
	out = base64.StdEncoding.AppendEncode(out, b)
	return append(out, '\\', 'n')
}

// batchJSONSlow is batchJSON through encoding/json.
func batchJSONSlow(values []batchValue, b64 bool) []byte {
	m := make(map[string]string, len(values))
	for _, v := range values {
		if b64 {
			m[v.id] = rubyBase64(v.value)
		} else {
			m[v.id] = string(v.value)
		}
	}
	return marshalJSON(m)
}
