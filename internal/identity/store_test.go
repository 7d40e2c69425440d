package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openFresh opens a store in a new state directory.
func openFresh(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "identity"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestOpen_firstStartGeneratesAPrivateKeyThatSurvivesReopen(t *testing.T) {
	s := openFresh(t)
	if got := mode(t, s.Dir()); got != 0o700 {
		t.Errorf("state directory mode %04o, want 0700", got)
	}
	if got := mode(t, filepath.Join(s.Dir(), CurrentKeyFile)); got != 0o600 {
		t.Errorf("key file mode %04o, want 0600", got)
	}
	if s.Next() != nil {
		t.Errorf("a fresh store has a next key %v", s.Next())
	}
	again, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if again.Current().ID != s.Current().ID || again.Current().private.N.Cmp(s.Current().private.N) != 0 {
		t.Fatalf("reopen (a restart, upgrade or reinstall) changed the key: %s -> %s", s.Current().ID, again.Current().ID)
	}
	entries, err := os.ReadDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("state directory holds %d entries, want only %s (no temporary file left)", len(entries), CurrentKeyFile)
	}
}

func TestOpen_refusesStateOthersCanUse(t *testing.T) {
	s := openFresh(t)
	keyPath := filepath.Join(s.Dir(), CurrentKeyFile)
	tests := []struct {
		name    string
		prepare func(t *testing.T)
		want    string
	}{
		{"dir-group-readable", func(t *testing.T) { chmod(t, s.Dir(), 0o750) }, "state directory " + s.Dir() + " is mode 0750"},
		{"key-world-readable", func(t *testing.T) { chmod(t, keyPath, 0o644) }, "signing key " + keyPath + " is mode 0644"},
		{"dir-owned-by-another-user", func(t *testing.T) { otherUser(t) }, "is owned by uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(func() { chmod(t, s.Dir(), 0o700); chmod(t, keyPath, 0o600) })
			tt.prepare(t)
			_, err := Open(s.Dir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "run `ch") {
				t.Errorf("the error does not say how to fix it: %v", err)
			}
		})
	}
}

func TestOpen_refusesAKeyThatIsNotARegularPrivateKey(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    string
	}{
		{"symlink", func(t *testing.T, dir string) {
			if err := os.Symlink("/etc/hostname", filepath.Join(dir, CurrentKeyFile)); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"not-pem", func(t *testing.T, dir string) { write(t, filepath.Join(dir, CurrentKeyFile), "hello") }, "not a PKCS#8 PEM private key"},
		{"bad-der", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, CurrentKeyFile), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}, "does not parse"},
		{"not-a-directory", func(t *testing.T, dir string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			write(t, dir, "x")
		}, "is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "identity")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tt.prepare(t, dir)
			_, err := Open(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := Open(""); err == nil || !strings.Contains(err.Error(), "CONJUR_SWARM_IDENTITY_STATE_DIR") {
		t.Errorf("Open(\"\") = %v, want the setting named", err)
	}
}

func TestRotate_publishesTheNextKeyBeforeItSigns(t *testing.T) {
	s := openFresh(t)
	first := s.Current().ID
	if _, err := s.Rotate(); err == nil || !strings.Contains(err.Error(), "jwks --next") {
		t.Fatalf("Rotate with no next key = %v, want an error naming jwks --next", err)
	}
	next, err := s.PrepareNext()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.PrepareNext(); again.ID != next.ID {
		t.Fatalf("a second PrepareNext replaced the published next key %s with %s", next.ID, again.ID)
	}
	if got := kids(s.JWKS()); got != first+","+next.ID {
		t.Fatalf("JWKS after PrepareNext lists %s, want current then next", got)
	}
	if s.Current().ID != first {
		t.Fatalf("PrepareNext made the next key sign")
	}
	if got := mode(t, filepath.Join(s.Dir(), NextKeyFile)); got != 0o600 {
		t.Errorf("next key file mode %04o, want 0600", got)
	}
	reopened, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if reopened.Next() == nil || reopened.Next().ID != next.ID {
		t.Fatalf("a restart lost the prepared next key")
	}
	if _, err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	if s.Current().ID != next.ID || s.Next() != nil || kids(s.JWKS()) != next.ID {
		t.Fatalf("after Rotate: current %s, JWKS %s; want %s alone", s.Current().ID, kids(s.JWKS()), next.ID)
	}
	reopened, err = Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if reopened.Current().ID != next.ID || reopened.Next() != nil {
		t.Fatalf("a restart after Rotate signs with %s, want %s", reopened.Current().ID, next.ID)
	}
}

func kids(j JWKS) string {
	var out []string
	for _, k := range j.Keys {
		out = append(out, k.Kid)
	}
	return strings.Join(out, ",")
}

func chmod(t *testing.T, path string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, m); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// otherUser makes the store believe it runs as another user than the
// owner of the files.
func otherUser(t *testing.T) {
	saved := euid
	euid = func() int { return saved() + 1 }
	t.Cleanup(func() { euid = saved })
}
