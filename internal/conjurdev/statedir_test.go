package conjurdev

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateDir_refusesForeignOrOpenDirectory: an existing --state directory
// that another user owns, or that others may write, is refused before
// anything is read from it or written to it: whoever can write there can
// plant a state.json (an API key, a token key, values) that the server
// would trust.
func TestStateDir_refusesForeignOrOpenDirectory(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, dir string) string // returns the directory to give
		want    string
	}{
		{"fail/world-writable", func(t *testing.T, dir string) string { chmod(t, dir, 0o777); return dir }, "writable by others"},
		{"fail/group-writable", func(t *testing.T, dir string) string { chmod(t, dir, 0o770); return dir }, "writable by others"},
		{"fail/owned-by-another-user", func(t *testing.T, dir string) string {
			if os.Geteuid() != 0 { // a directory root owns stands for another user's
				return "/var"
			}
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "owned by user"},
		{"fail/not-a-directory", func(t *testing.T, dir string) string {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "not a directory"},
		{"fail/symlink", func(t *testing.T, dir string) string {
			target := t.TempDir()
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, dir); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "symbolic link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			dir = tc.prepare(t, dir)
			_, err := New(Options{Account: "dev", StateDir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("New = %v, want a refusal naming %s and saying %q", err, dir, tc.want)
			}
			if _, err := os.Lstat(filepath.Join(dir, stateFile)); err == nil {
				t.Errorf("the refused directory got a %s", stateFile)
			}
		})
	}
}

// TestStateDir_ownPrivateDirectoryIsUsed: a directory of this user that no
// one else may write (0700, or 0755 tightened to 0700) is used, and a missing
// one is created 0700.
func TestStateDir_ownPrivateDirectoryIsUsed(t *testing.T) {
	for _, mode := range []os.FileMode{0o700, 0o755, 0} {
		dir := filepath.Join(t.TempDir(), "state")
		if mode != 0 {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			chmod(t, dir, mode)
		}
		if _, err := New(Options{Account: "dev", StateDir: dir}); err != nil {
			t.Fatalf("mode %v: New = %v", mode, err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("mode %v: directory is %v after New, want 0700", mode, fi.Mode().Perm())
		}
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
