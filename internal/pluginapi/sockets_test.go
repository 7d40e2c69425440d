package pluginapi

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFindSockets(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a1/conjur.sock", "b2/conjur.sock", "conjur.sock"} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("unix", full)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	// Not sockets, or not ours: ignored.
	if err := os.MkdirAll(filepath.Join(dir, "c3"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c3", SocketName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "other.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	got, err := FindSockets(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a1/conjur.sock"), filepath.Join(dir, "b2/conjur.sock"), filepath.Join(dir, "conjur.sock")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sockets (-want +got):\n%s", diff)
	}
	if _, err := FindSockets(filepath.Join(dir, "missing")); err == nil {
		t.Error("no error for a missing directory")
	}
}
