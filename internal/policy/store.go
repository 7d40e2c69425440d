package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DefaultPollInterval is how often Store.Run looks at the mapping file.
const DefaultPollInterval = time.Second

// StoreStatus describes the policy a Store holds.
type StoreStatus struct {
	Path        string    // "" for the built-in policy
	Hash        string    // of the policy in force: "sha256:<hex>" or "builtin"
	LoadedAt    time.Time // when the policy in force was loaded
	Rules       int       // rules of the policy in force
	LastError   string    // why the newest file content was rejected ("" once a good one loads)
	LastErrorAt time.Time
}

// Store holds the mapping policy in force and reloads its file when the
// content changes. It is safe for concurrent use.
//
// Run polls the file (stat and content hash) rather than relying on file
// system events, because a bind-mounted file that is replaced on the host
// by rename is not seen by inotify inside the mount, and in-place writes
// may arrive in several pieces. A new content is applied only when two
// consecutive polls read the same bytes, so a half-written file is never
// loaded; a broken one is logged and rejected and the last good policy
// stays.
type Store struct {
	path     string
	log      *zap.Logger
	interval time.Duration

	cur atomic.Pointer[loaded]

	mu          sync.Mutex // guards the fields below
	pending     string     // hash of content seen once, waiting to be confirmed
	rejected    string     // hash of the last rejected content
	lastReadErr string
	lastErr     string
	lastErrAt   time.Time
}

type loaded struct {
	policy *Policy
	at     time.Time
}

// NewStore loads the mapping file at path ("" selects the built-in policy).
// A missing, unreadable or broken file is an error (Problems for a broken
// one).
func NewStore(path string, log *zap.Logger) (*Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{path: path, log: log, interval: DefaultPollInterval}
	if path == "" {
		s.cur.Store(&loaded{policy: Builtin(), at: time.Now()})
		log.Info("mapping policy: built-in (no mapping file set)", zap.String("hash", "builtin"), zap.Int("rules", 1))
		return s, nil
	}
	p, err := ParseFile(path)
	if err != nil {
		return nil, err
	}
	s.cur.Store(&loaded{policy: p, at: time.Now()})
	log.Info("mapping policy loaded", zap.String("path", path), zap.String("hash", p.Hash()), zap.Int("rules", len(p.rules)))
	return s, nil
}

// ParseFile reads the mapping file at path and parses it (see Parse). A file
// that cannot be read is a plain error, not Problems.
func ParseFile(path string) (*Policy, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// readFile reads at most MaxFileSize+1 bytes of the file.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read mapping file %s: %w", path, err)
	}
	return data, nil
}

// Policy returns the policy in force.
func (s *Store) Policy() *Policy { return s.cur.Load().policy }

// Resolve decides req with the policy in force.
func (s *Store) Resolve(req Request) Decision { return s.Policy().Resolve(req) }

// Status describes the policy in force and the last rejected file content.
func (s *Store) Status() StoreStatus {
	l := s.cur.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoreStatus{
		Path:        s.path,
		Hash:        l.policy.Hash(),
		LoadedAt:    l.at,
		Rules:       len(l.policy.rules),
		LastError:   s.lastErr,
		LastErrorAt: s.lastErrAt,
	}
}

// Run watches the file until ctx is done, then returns ctx.Err(). With the
// built-in policy there is nothing to watch and Run just waits.
func (s *Store) Run(ctx context.Context) error {
	if s.path == "" {
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			s.Check()
		}
	}
}

// Check reads the file once and applies a new content that the previous
// Check also read (see Store). Run calls it on every poll; tests call it
// directly.
func (s *Store) Check() {
	if s.path == "" {
		return
	}
	data, err := readFile(s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		msg := err.Error()
		if msg != s.lastReadErr {
			s.lastReadErr = msg
			s.lastErr, s.lastErrAt = msg+"; keeping the last good policy", time.Now()
			s.log.Error("mapping file unreadable; keeping the last good policy",
				zap.String("path", s.path), zap.String("hash", s.Policy().Hash()), zap.Error(err))
		}
		s.pending = ""
		return
	}
	s.lastReadErr = ""
	sum := sha256.Sum256(data)
	hash := "sha256:" + hex.EncodeToString(sum[:])
	if hash == s.Policy().Hash() {
		s.pending = ""
		if s.rejected != "" {
			// The file went back to the content in force.
			s.rejected, s.lastErr, s.lastErrAt = "", "", time.Time{}
		}
		return
	}
	if hash == s.rejected {
		return
	}
	if hash != s.pending {
		s.pending = hash // apply once the next poll reads the same bytes
		return
	}
	s.pending = ""
	p, err := Parse(s.path, data)
	if err != nil {
		s.rejected = hash
		var ps Problems
		lines := []string{err.Error()}
		if errors.As(err, &ps) {
			lines = ps.Strings()
		}
		s.lastErr = fmt.Sprintf("mapping file %s rejected (%s): %s; keeping the last good policy (%s)",
			s.path, hash, strings.Join(lines, "; "), s.Policy().Hash())
		s.lastErrAt = time.Now()
		s.log.Error("mapping file rejected; keeping the last good policy",
			zap.String("path", s.path), zap.String("rejected_hash", hash),
			zap.String("hash", s.Policy().Hash()), zap.Strings("problems", lines))
		return
	}
	old := s.Policy().Hash()
	s.cur.Store(&loaded{policy: p, at: time.Now()})
	s.rejected, s.lastErr, s.lastErrAt = "", "", time.Time{}
	s.log.Info("mapping policy reloaded", zap.String("path", s.path),
		zap.String("hash", hash), zap.String("previous_hash", old), zap.Int("rules", len(p.rules)))
}
