package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const storeV1 = `version: 1
within: [apps/]
rules:
  - name: by-label
    match: {secret_labels: {conjur.variable: "*"}}
    variable: "{secret_label:conjur.variable}"
`

const storeV2 = `version: 1
within: [apps/]
rules:
  - name: by-label
    match: {secret_labels: {conjur.variable: "*"}}
    variable: "{secret_label:conjur.variable}"
  - name: by-name
    match: {secret: "*"}
    variable: "apps/{secret}"
`

// storeV2Truncated is storeV2 cut short while being written in place.
const storeV2Truncated = `version: 1
within: [apps/]
rules:
  - name: by-label
    match: {secret_labels: {conjur.variable: "*"}}
    variable: "{secret_label:conjur.variable}"
  - name: by-name
    match: {secret: "*"}
    varia`

func newTestStore(t *testing.T, content string) (*Store, string, *observer.ObservedLogs) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mapping.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	s, err := NewStore(path, zap.New(core))
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return s, path, logs
}

// writeInPlace rewrites the file without replacing it, as a bind-mounted
// file changes.
func writeInPlace(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeByRename replaces the file as editors do.
func writeByRename(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

var nameReq = Request{SecretName: "db"}

func TestStoreReload(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(*testing.T, string, string)
	}{
		{"ok/in-place-write", writeInPlace},
		{"ok/rename", writeByRename},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path, logs := newTestStore(t, storeV1)
			first := s.Status()
			if first.Rules != 1 || first.Path != path || !strings.HasPrefix(first.Hash, "sha256:") {
				t.Fatalf("Status after load: %+v", first)
			}
			if d := s.Resolve(nameReq); d.Allow {
				t.Fatalf("v1 allowed %+v", d)
			}
			tc.write(t, path, storeV2)
			s.Check() // seen once: not applied yet
			if got := s.Status().Hash; got != first.Hash {
				t.Fatalf("content applied after one read; want it confirmed by a second read")
			}
			s.Check()
			st := s.Status()
			if st.Rules != 2 || st.Hash == first.Hash || st.LastError != "" {
				t.Fatalf("Status after reload: %+v", st)
			}
			if d := s.Resolve(nameReq); !d.Allow || d.Variable != "apps/db" {
				t.Fatalf("v2 decision %+v", d)
			}
			if logs.FilterMessage("mapping policy reloaded").Len() != 1 {
				t.Errorf("reload not logged: %v", logs.All())
			}
		})
	}
}

func TestStoreRejectsBrokenFile(t *testing.T) {
	s, path, logs := newTestStore(t, storeV1)
	good := s.Status()
	writeInPlace(t, path, storeV2Truncated)
	s.Check()
	s.Check()
	s.Check() // a third read of the same broken content logs nothing more
	st := s.Status()
	if st.Hash != good.Hash || st.Rules != 1 {
		t.Fatalf("broken file replaced the good policy: %+v", st)
	}
	if !strings.Contains(st.LastError, path+":") || !strings.Contains(st.LastError, "keeping the last good policy") || st.LastErrorAt.IsZero() {
		t.Errorf("LastError = %q at %v", st.LastError, st.LastErrorAt)
	}
	rejected := logs.FilterMessage("mapping file rejected; keeping the last good policy")
	if rejected.Len() != 1 {
		t.Fatalf("rejections logged %d times, want 1", rejected.Len())
	}
	if probs, ok := rejected.All()[0].ContextMap()["problems"].([]any); !ok || len(probs) == 0 {
		t.Errorf("rejection log has no problems field: %v", rejected.All()[0].ContextMap())
	}
	// Fixing the file loads it.
	writeInPlace(t, path, storeV2)
	s.Check()
	s.Check()
	if st := s.Status(); st.Rules != 2 || st.LastError != "" {
		t.Fatalf("fixed file not loaded: %+v", st)
	}
}

func TestStoreHalfWrittenFileNeverApplied(t *testing.T) {
	// A truncated rule that parses (its allow cut off) would widen access;
	// a content is applied only once two reads agree.
	const full = `version: 1
rules:
  - name: a
    match: {secret: "*"}
    variable: "apps/{secret}"
    allow: {node: "n1"}
`
	s, path, _ := newTestStore(t, full)
	half := full[:strings.Index(full, "    allow")]
	writeInPlace(t, path, half)
	s.Check()
	writeInPlace(t, path, full)
	s.Check()
	if d := s.Resolve(Request{SecretName: "x", NodeID: "n2"}); d.Allow {
		t.Fatalf("half-written file applied: %+v", d)
	}
}

func TestStoreMissingFile(t *testing.T) {
	s, path, logs := newTestStore(t, storeV1)
	good := s.Status().Hash
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s.Check()
	s.Check()
	st := s.Status()
	if st.Hash != good || !strings.Contains(st.LastError, "keeping the last good policy") {
		t.Fatalf("Status: %+v", st)
	}
	if n := logs.FilterMessage("mapping file unreadable; keeping the last good policy").Len(); n != 1 {
		t.Errorf("unreadable logged %d times, want 1", n)
	}
}

func TestNewStore(t *testing.T) {
	t.Run("ok/builtin", func(t *testing.T) {
		s, err := NewStore("", nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := s.Status(); st.Hash != "builtin" || st.Rules != 1 || st.Path != "" {
			t.Errorf("Status: %+v", st)
		}
	})
	t.Run("fail/broken-file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "m.yml")
		if err := os.WriteFile(path, []byte("version: 2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := NewStore(path, zap.NewNop())
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 2 {
			t.Fatalf("err = %v, want 2 problems", err)
		}
	})
	t.Run("fail/missing-file", func(t *testing.T) {
		_, err := NewStore(filepath.Join(t.TempDir(), "nope.yml"), zap.NewNop())
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v, want not exist", err)
		}
	})
}

func TestStoreRunStopsOnCancel(t *testing.T) {
	s, path, _ := newTestStore(t, storeV1)
	s.interval = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	writeByRename(t, path, storeV2)
	// Wait (bounded) for the poller to pick up the change.
	deadline := time.Now().Add(10 * time.Second)
	for s.Status().Rules != 2 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not reload the file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestStoreRunBuiltinStopsOnCancel(t *testing.T) {
	s, err := NewStore("", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}
