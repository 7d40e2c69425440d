package pluginapi

import "unicode/utf8"

// Clip bounds a field another process sent (a request that failed
// validation may carry anything up to 1 MiB; a status answer anything at
// all) for a log line, an audit record or an Err text, with the characters
// a terminal would act on escaped (LogText).
func Clip(s string) string { return ClipTo(LogText(s), 256) }

// ClipTo bounds s to about max bytes, cutting at a character boundary.
func ClipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...[clipped]"
}

// OneLine renders an error on one line (errors.Join uses newlines), for a log
// field or an answer's Err.
func OneLine(err error) string {
	b := []byte(err.Error())
	for i, c := range b {
		if c == '\n' {
			b[i] = ';'
		}
	}
	return string(b)
}
