package pluginapi

import (
	"strings"
	"testing"
)

func TestLogTextLeavesOrdinaryTextAlone(t *testing.T) {
	for _, s := range []string{"", "web_api", "registry.example.com/a/b:1@sha256:00", "café ünïcode 日本", `back\slash`} {
		if got := LogText(s); got != s {
			t.Errorf("LogText(%q) = %q", s, got)
		}
	}
	if got := LogText(strings.Repeat("\u202e", 2)); got != `\u202e\u202e` {
		t.Errorf("got %q", got)
	}
}
