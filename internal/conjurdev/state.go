package conjurdev

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// State kept on disk (Options.StateDir), for rehearsals only: restarting a
// dev server that keeps its state lets one rehearse "Conjur went away and
// came back" with the same CA, API keys, token key, policy and values. The
// directory is 0700 and every file 0600, but the values and keys in it are
// plain text: never keep real secrets there.
const (
	stateFile  = "state.json"
	caCertFile = "ca.pem"
	caKeyFile  = "ca-key.pem"

	stateFormat = 1
)

// stateJSON is the whole store as saved.
type stateJSON struct {
	Format         int               `json:"format"`
	Account        string            `json:"account"`
	TokenKey       []byte            `json:"token_key"`
	Resources      []stateResource   `json:"resources"`
	Memberships    []stateMembership `json:"memberships"`
	PolicyVersions map[string]int    `json:"policy_versions"`
	APIEnabled     map[string]bool   `json:"authn_enabled"`
	JWTEnabled     map[string]bool   `json:"jwt_enabled,omitempty"` // format 1 before authn_enabled: by authn-jwt service id
}

type stateResource struct {
	ID          string                       `json:"id"`
	Owner       string                       `json:"owner"`
	Policy      string                       `json:"policy"`
	Created     time.Time                    `json:"created"`
	Annotations map[string]stateAnnotation   `json:"annotations,omitempty"`
	Permits     map[string]map[string]string `json:"permits,omitempty"`
	APIKey      string                       `json:"api_key,omitempty"`
	Password    string                       `json:"password,omitempty"`
	Restricted  []netip.Prefix               `json:"restricted_to,omitempty"`
	Versions    []stateVersion               `json:"versions,omitempty"`
	NextVersion int                          `json:"next_version,omitempty"`
}

type stateAnnotation struct {
	Value  string `json:"value"`
	Policy string `json:"policy"`
}

type stateVersion struct {
	Version int    `json:"version"`
	Value   []byte `json:"value"`
}

type stateMembership struct {
	Member    string `json:"member"`
	Role      string `json:"role"`
	Policy    string `json:"policy"`
	Ownership bool   `json:"ownership,omitempty"`
}

// Restored reports whether New loaded the store from Options.StateDir
// (false on a first start with an empty directory, and without one).
func (s *Server) Restored() bool { return s.restored }

// openStateDir creates dir (0700), or checks that an existing dir is a
// directory (not a link to one) that this user owns and no one else may
// write, and tightens it to 0700. Whoever can write the directory can plant
// a state.json (API keys, the token key, values) that the server would
// trust, or swap the files it writes.
func openStateDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		if err != nil {
			return fmt.Errorf("conjurdev: state directory %s: %w", dir, err)
		}
		return nil
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("conjurdev: state directory %s: %w", dir, err)
	}
	if why := unsafeStateDir(fi, os.Geteuid()); why != "" {
		return fmt.Errorf("conjurdev: state directory %s is %s: give --state a directory of your own that only you may write (or a path that does not exist yet; it is created 0700)", dir, why)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("conjurdev: state directory %s: make it 0700: %w", dir, err)
	}
	return nil
}

// unsafeStateDir says why fi cannot hold the state of a server running as
// uid, or "" when it can.
func unsafeStateDir(fi fs.FileInfo, uid int) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "a symbolic link"
	case !fi.IsDir():
		return "not a directory"
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Sprintf("writable by others (mode %04o)", fi.Mode().Perm())
	}
	if owner, ok := fileOwner(fi); ok && owner != uid {
		return fmt.Sprintf("owned by user %d, not by this user (%d)", owner, uid)
	}
	return ""
}

// restoreState loads dir/state.json into s when it exists. adminKey is the
// key the caller asked for ("" for any).
func (s *Server) restoreState(dir, adminKey string) error {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("conjurdev: read the state: %w", err)
	}
	var st stateJSON
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("conjurdev: state %s is damaged (%v): remove the directory to start afresh", filepath.Join(dir, stateFile), err)
	}
	switch {
	case st.Format != stateFormat:
		return fmt.Errorf("conjurdev: state %s has format %d, this server reads %d: use a new --state directory", dir, st.Format, stateFormat)
	case st.Account != s.account:
		return fmt.Errorf("conjurdev: state %s is for account %q, not %q: give --account %s or a new --state directory", dir, st.Account, s.account, st.Account)
	case len(st.TokenKey) < 32:
		return fmt.Errorf("conjurdev: state %s has no token key: remove the directory to start afresh", dir)
	}
	fresh := newStore(s.account)
	for _, r := range st.Resources {
		_, kind, ident, ok := splitID(r.ID)
		if !ok || !recordKinds[kind] {
			return fmt.Errorf("conjurdev: state %s: bad resource id %q: remove the directory to start afresh", dir, r.ID)
		}
		res := &resource{
			id: r.ID, kind: kind, ident: ident, owner: r.Owner, policy: r.Policy, created: r.Created,
			annotations: map[string]annotation{}, permits: map[string]map[string]string{},
			apiKey: r.APIKey, password: r.Password, nextVer: r.NextVersion, restrictedTo: r.Restricted,
		}
		for k, a := range r.Annotations {
			res.annotations[k] = annotation{value: a.Value, policy: a.Policy}
		}
		for priv, holders := range r.Permits {
			res.permits[priv] = holders
		}
		for _, v := range r.Versions {
			res.versions = append(res.versions, secretVersion{version: v.Version, value: v.Value})
		}
		fresh.resources[r.ID] = res
	}
	for _, m := range st.Memberships {
		fresh.addEdge(m.Member, m.Role, edge{policy: m.Policy, ownership: m.Ownership})
	}
	for k, v := range st.PolicyVersions {
		fresh.policyVersions[k] = v
	}
	for k, v := range st.JWTEnabled {
		fresh.apiEnabled["authn-jwt/"+k] = v
	}
	for k, v := range st.APIEnabled {
		fresh.apiEnabled[k] = v
	}
	admin, ok := fresh.resources[fresh.fullID("user", "admin")]
	if !ok || admin.apiKey == "" {
		return fmt.Errorf("conjurdev: state %s has no admin user: remove the directory to start afresh", dir)
	}
	if adminKey != "" && adminKey != admin.apiKey {
		return fmt.Errorf("conjurdev: state %s keeps its own admin API key: drop --admin-api-key, or use a new --state directory", dir)
	}
	if err := s.tokens.setSecret(st.TokenKey); err != nil {
		return err
	}
	s.st = fresh
	key := admin.apiKey
	s.adminKey.Store(&key)
	s.restored = true
	return nil
}

// persistLocked writes the store to the state directory, if there is one.
// The caller holds s.mu (read or write). The file is replaced atomically.
func (s *Server) persistLocked() error {
	if s.stateDir == "" {
		return nil
	}
	st := stateJSON{
		Format: stateFormat, Account: s.account, TokenKey: s.tokens.secret(),
		PolicyVersions: s.st.policyVersions, APIEnabled: s.st.apiEnabled,
	}
	for _, res := range s.st.resources {
		r := stateResource{ID: res.id, Owner: res.owner, Policy: res.policy, Created: res.created,
			APIKey: res.apiKey, Password: res.password, NextVersion: res.nextVer, Restricted: res.restrictedTo}
		if len(res.annotations) > 0 {
			r.Annotations = map[string]stateAnnotation{}
			for k, a := range res.annotations {
				r.Annotations[k] = stateAnnotation{Value: a.value, Policy: a.policy}
			}
		}
		for priv, holders := range res.permits {
			if len(holders) == 0 {
				continue
			}
			if r.Permits == nil {
				r.Permits = map[string]map[string]string{}
			}
			r.Permits[priv] = holders
		}
		for _, v := range res.versions {
			r.Versions = append(r.Versions, stateVersion{Version: v.version, Value: v.value})
		}
		st.Resources = append(st.Resources, r)
	}
	slices.SortFunc(st.Resources, func(a, b stateResource) int { return strings.Compare(a.ID, b.ID) })
	for member, roles := range s.st.memberOf {
		for role, e := range roles {
			st.Memberships = append(st.Memberships, stateMembership{Member: member, Role: role, Policy: e.policy, Ownership: e.ownership})
		}
	}
	slices.SortFunc(st.Memberships, func(a, b stateMembership) int {
		if c := strings.Compare(a.Member, b.Member); c != 0 {
			return c
		}
		return strings.Compare(a.Role, b.Role)
	})
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("conjurdev: encode the state: %w", err)
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	return writePrivate(filepath.Join(s.stateDir, stateFile), data)
}

// saveLocked persists after a change and logs a failure: the change is
// made in memory either way, and the operator learns from the log that the
// next restart will not see it. The caller holds s.mu.
func (s *Server) saveLocked() {
	if err := s.persistLocked(); err != nil {
		s.log.Error("the change is not saved to the state directory; a restart will lose it", zap.Error(err))
	}
}

// writePrivate replaces path with data through a 0600 temporary file.
func writePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("conjurdev: save %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("conjurdev: save %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("conjurdev: save %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("conjurdev: save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("conjurdev: save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("conjurdev: save %s: %w", path, err)
	}
	return nil
}

// loadOrNewCA returns the CA kept in the state directory, or a new one
// (saved there when there is a directory).
func (s *Server) loadOrNewCA() (*rootCA, error) {
	if s.stateDir == "" {
		return newRootCA()
	}
	certPEM, err1 := os.ReadFile(filepath.Join(s.stateDir, caCertFile))
	keyPEM, err2 := os.ReadFile(filepath.Join(s.stateDir, caKeyFile))
	if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) {
		ca, err := newRootCA()
		if err != nil {
			return nil, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
		if err != nil {
			return nil, fmt.Errorf("conjurdev: encode the CA key: %w", err)
		}
		if err := writePrivate(filepath.Join(s.stateDir, caKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
			return nil, err
		}
		if err := writePrivate(filepath.Join(s.stateDir, caCertFile), ca.pem()); err != nil {
			return nil, err
		}
		return ca, nil
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("conjurdev: read the CA from the state directory: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("conjurdev: the CA in %s is not PEM: remove %s and %s to make a new one", s.stateDir, caCertFile, caKeyFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("conjurdev: the CA certificate in %s: %w", s.stateDir, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	key, ok := k.(*ecdsa.PrivateKey)
	if err != nil || !ok {
		return nil, fmt.Errorf("conjurdev: the CA key in %s is not an ECDSA key (%v)", s.stateDir, err)
	}
	return &rootCA{cert: cert, key: key}, nil
}

// fileOwner is the owner's user id of fi, when the system reports one.
func fileOwner(fi fs.FileInfo) (int, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), true
	}
	return 0, false
}
