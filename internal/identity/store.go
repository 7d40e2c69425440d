package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// File names of the keys in the state directory.
const (
	CurrentKeyFile = "signing-key.pem"
	NextKeyFile    = "next-signing-key.pem"
)

// euid is the user the state must belong to (a variable so tests can
// stand in another user).
var euid = os.Geteuid

// keyBits is the RSA modulus size of a generated key.
const keyBits = 2048

// Key is one signing key: its id (the RFC 7638 thumbprint of its public
// half) and the private key, which never prints.
type Key struct {
	ID      string
	private *rsa.PrivateKey
	file    fs.FileInfo // the file it was read from, to notice a change
}

// String names the key by id only.
func (k *Key) String() string { return "identity.Key{ID:" + k.ID + "}" }

// Public returns the key's public half.
func (k *Key) Public() *rsa.PublicKey { return &k.private.PublicKey }

// Store is the state directory's keys. It is safe for concurrent use.
// Another process may prepare or rotate keys in the same directory (the
// `conjur-swarm jwks` command on the host): Refresh picks that up.
type Store struct {
	dir string

	mu      sync.RWMutex
	current *Key
	next    *Key // nil when no rotation is prepared
}

// Open checks the state directory dir (creating it 0700 when it does not
// exist), loads the current key, generating it on first start, and the next
// key when one is prepared. A directory or key file that others can read or
// write, or that another user owns, is refused with the fix.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("identity: no state directory: set CONJUR_SWARM_IDENTITY_STATE_DIR")
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	s := &Store{dir: dir}
	cur, err := loadOrCreate(filepath.Join(dir, CurrentKeyFile))
	if err != nil {
		return nil, err
	}
	s.current = cur
	next, err := loadKey(filepath.Join(dir, NextKeyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	s.next = next
	return s, nil
}

// Refresh re-reads the key files that changed since they were read (a
// rotation or a next key made by another process). A key file that has
// become unreadable or too open is an error, and the store keeps nothing
// from it: the signer then refuses to sign rather than use a stale key.
func (s *Store) Refresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := reread(filepath.Join(s.dir, CurrentKeyFile), s.current)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	next, err := reread(filepath.Join(s.dir, NextKeyFile), s.next)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if cur == nil && s.current != nil {
		return fmt.Errorf("identity: the signing key %s has gone: restart the plugin to generate a new one (and publish its JWKS)", filepath.Join(s.dir, CurrentKeyFile))
	}
	s.current, s.next = cur, next
	return nil
}

// reread returns have when path is still the file have was read from, else
// the key read afresh (nil when path does not exist).
func reread(path string, have *Key) (*Key, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if have != nil && os.SameFile(fi, have.file) && fi.ModTime().Equal(have.file.ModTime()) && fi.Mode() == have.file.Mode() {
		return have, nil
	}
	return loadKey(path)
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

// Current returns the key that signs.
func (s *Store) Current() *Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current
}

// Next returns the prepared next key, or nil.
func (s *Store) Next() *Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.next
}

// PrepareNext generates the next key (step 1 of a rollover) unless one is
// already prepared, and returns it. It signs nothing until Rotate.
func (s *Store) PrepareNext() (*Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next != nil {
		return s.next, nil
	}
	k, err := loadOrCreate(filepath.Join(s.dir, NextKeyFile))
	if err != nil {
		return nil, err
	}
	s.next = k
	return k, nil
}

// Rotate makes the prepared next key the current one (step 2 of a
// rollover, once Conjur's public-keys holds it); the old key is deleted. It
// fails when no next key is prepared.
func (s *Store) Rotate() (*Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == nil {
		return nil, errors.New("identity: no next key to rotate to: run `conjur-swarm jwks --next` first, publish its JWKS in Conjur's public-keys, then rotate")
	}
	if err := os.Rename(filepath.Join(s.dir, NextKeyFile), filepath.Join(s.dir, CurrentKeyFile)); err != nil {
		return nil, fmt.Errorf("identity: make the next key current: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return nil, err
	}
	s.current, s.next = s.next, nil
	return s.current, nil
}

// prepareDir creates dir 0700 when missing, then checks it.
func prepareDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("identity: create the state directory %s: %w (create it with `install -d -m 0700 %s`)", dir, err, dir)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("identity: state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("identity: the state directory %s is not a directory: point CONJUR_SWARM_IDENTITY_STATE_DIR at a directory", dir)
	}
	return checkPrivate(dir, fi, "state directory", "700")
}

// checkPrivate refuses a file or directory that group or others may use, or
// that another user owns.
func checkPrivate(path string, fi fs.FileInfo, what, mode string) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("identity: the %s %s is mode %04o, open to other users: it must be %s (run `chmod %s %s`)", what, path, perm, mode, mode, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != euid() {
		return fmt.Errorf("identity: the %s %s is owned by uid %d, not by the plugin's uid %d: it must be the plugin's own (run `chown %d %s`)", what, path, st.Uid, euid(), euid(), path)
	}
	return nil
}

// loadOrCreate loads the key at path, or generates one there when none
// exists. Creation is atomic (written aside, then linked into place), so
// two processes starting at once end with one key.
func loadOrCreate(path string) (*Key, error) {
	k, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	priv, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, fmt.Errorf("identity: generate a signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("identity: encode the signing key: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return loadKey(path)
}

// writeNew writes data to path unless path exists (then the existing file
// stays): 0600, synced, through a temporary file linked into place.
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return fmt.Errorf("identity: write a signing key in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("identity: write a signing key in %s: %w", dir, err)
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("identity: put the signing key in place at %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("identity: sync the state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("identity: sync the state directory %s: %w", dir, err)
	}
	return nil
}

// loadKey reads a PKCS#8 PEM RSA key, checking the file is private. A
// missing file is fs.ErrNotExist.
func loadKey(path string) (*Key, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("identity: signing key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: the signing key %s is not a regular file (a symlink or device): replace it with the key file itself, or remove it to generate a new key", path)
	}
	if err := checkPrivate(path, fi, "signing key", "600"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: read the signing key: %w", err)
	}
	return parseKey(path, data, fi)
}

func parseKey(path string, data []byte, fi fs.FileInfo) (*Key, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("identity: the signing key %s is not a PKCS#8 PEM private key: remove it (and publish the new key's JWKS) to generate a new one", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: the signing key %s does not parse (%v): remove it (and publish the new key's JWKS) to generate a new one", path, err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok || priv.N.BitLen() < keyBits {
		return nil, fmt.Errorf("identity: the signing key %s is not an RSA key of at least %d bits (Conjur's authn-jwt accepts RS256 only among these): remove it to generate a new one", path, keyBits)
	}
	return &Key{ID: thumbprint(&priv.PublicKey), private: priv, file: fi}, nil
}
