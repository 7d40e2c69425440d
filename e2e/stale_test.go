package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

// Issue 23's trial on the real engine: a service with two secrets of a
// stale_if_error rule, prefetch on (the default), Conjur stops after a
// task was served both, then a forced update: the new task starts with
// both last good values (one of them prefetched at the task before).
func TestStaleIfErrorForcedUpdateWithConjurDown(t *testing.T) {
	s := getSuite(t)
	a := s.newVariable(t, []byte("stale-value-a"))
	b := s.newVariable(t, []byte("stale-value-b"))
	sa, sb := s.name("sta"), s.name("stb")
	s.secret(t, s.plugin, sa, "cse2e.stale="+a)
	s.secret(t, s.plugin, sb, "cse2e.stale="+b)
	want := map[string][]byte{sa: []byte("stale-value-a"), sb: []byte("stale-value-b")}
	svc := s.name("svc")
	s.service(t, svc, []string{sa, sb}, "--update-order", "start-first")
	first, f := only(waitReaders(t, svc, 1, nil))
	checkValues(t, first, f, want)
	// A second task: its first Get prefetches the other secret.
	old := taskIDs(t, svc)
	mustDocker(t, "service", "update", "-d", "--force", svc)
	second, f := only(waitReaders(t, svc, 1, old))
	old = taskIDs(t, svc)
	checkValues(t, second, f, want)
	s.waitPluginLog(t, s.pluginID, `"task":"`+second+`"`, `"prefetched":true`)

	addr := strings.TrimPrefix(s.listener.URL, "https://")
	if err := s.listener.Close(); err != nil { // Conjur stops answering
		t.Fatal(err)
	}
	t.Cleanup(func() { s.relisten(t, addr) })
	mustDocker(t, "service", "update", "-d", "--force", svc)
	third, f := only(waitReaders(t, svc, 1, old))
	checkValues(t, third, f, want)
	for _, sec := range []string{sa, sb} {
		s.waitPluginLog(t, s.pluginID, `"task":"`+third+`"`, `"secret":"`+sec+`"`, `"stale":true`, `"stale_cause":"UNAVAILABLE"`)
	}
}

// relisten serves the suite's Conjur on addr again (same server, same CA).
func (s *suite) relisten(t *testing.T, addr string) {
	t.Helper()
	var err error
	for range 50 { // the port just closed may not be free at once
		var l *conjurdev.Listener
		if l, err = s.dev.Listen(addr, true); err == nil {
			s.listener = l
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Conjur cannot listen on %s again, the suite's later tests will fail: %v", addr, err)
}
