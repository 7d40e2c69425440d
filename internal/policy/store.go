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
	Path     string    // "" for the built-in policy
	Hash     string    // of the policy in force: "sha256:<hex>" or "builtin"; "" when none is
	LoadedAt time.Time // when the policy in force was loaded
	Rules    int       // rules of the policy in force
	// FailClosed: the file was unreadable or invalid when the plugin
	// started and no good version has been read since, so no policy is in
	// force and every request is answered MAPPING_INVALID.
	FailClosed  bool
	LastError   string // why the newest file content was rejected ("" once a good one loads)
	LastErrorAt time.Time
	Problems    []string // every problem of the rejected content, "FILE:LINE:COL: message"
	// StaleRules are the rules of the policy in force with stale_if_error.
	StaleRules []StaleRule
}

// ConditionMappingInvalid is the Condition of the Decision a Store gives
// while no policy is in force (the mapping file was broken at start): the
// request is refused, and the driver answers MAPPING_INVALID.
const ConditionMappingInvalid = "mapping_file"

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
	problems    []string
}

// loaded is the policy in force, or, when policy is nil, the refusal every
// request gets because none is (closed).
type loaded struct {
	policy *Policy
	at     time.Time
	closed Decision
}

// NewStore loads the mapping file at path ("" selects the built-in policy).
// A missing, unreadable or broken file is an error (Problems for a broken
// one). The plugin uses OpenStore instead, which starts anyway.
func NewStore(path string, log *zap.Logger) (*Store, error) {
	if path != "" {
		if _, err := ParseFile(path); err != nil {
			return nil, err
		}
	}
	return OpenStore(path, log), nil
}

// OpenStore is NewStore for the plugin: a missing, unreadable or broken
// file does not stop it. The Store then fails closed (every Resolve is a
// denial with Condition ConditionMappingInvalid naming the file and its
// first problem; Status lists them all) until Check reads a good version,
// which it adopts.
func OpenStore(path string, log *zap.Logger) *Store {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{path: path, log: log, interval: DefaultPollInterval}
	if path == "" {
		s.cur.Store(&loaded{policy: Builtin(), at: time.Now()})
		log.Info("mapping policy: built-in (no mapping file set)", zap.String("hash", "builtin"), zap.Int("rules", 1))
		return s
	}
	data, err := readFile(path)
	var p *Policy
	if err == nil {
		p, err = Parse(path, data)
	}
	if err != nil {
		s.failClosed(data, err)
		return s
	}
	s.cur.Store(&loaded{policy: p, at: time.Now()})
	log.Info("mapping policy loaded", zap.String("path", path), zap.String("hash", p.Hash()), zap.Int("rules", len(p.rules)))
	return s
}

// failClosed records why the file could not be used at start: no policy is
// in force and every request is refused with the file's first problem.
func (s *Store) failClosed(data []byte, err error) {
	lines := problemLines(err)
	if data != nil {
		s.rejected = contentHash(data) // re-read, but not re-parsed, until it changes
	} else {
		s.lastReadErr = err.Error()
	}
	s.problems = lines
	s.lastErr = fmt.Sprintf("mapping file %s is invalid and no policy is in force: %s; fix it (check it with `conjur-swarm policy validate`): it is adopted as soon as it is good",
		s.path, strings.Join(lines, "; "))
	s.lastErrAt = time.Now()
	first := lines[0]
	if len(lines) > 1 {
		first += fmt.Sprintf(" (and %d more problems, listed by `conjur-swarm status`)", len(lines)-1)
	}
	s.cur.Store(&loaded{closed: Decision{
		DoNotReuse: true,
		Condition:  ConditionMappingInvalid,
		Reason: oneLine(fmt.Sprintf("the mapping file %s is invalid, so no policy is in force and every secret is refused: %s; fix the file (check it with `conjur-swarm policy validate`): the plugin adopts it within seconds",
			s.path, first)),
	}})
	s.log.Error("mapping file invalid at start: every request is refused MAPPING_INVALID until the file is fixed",
		zap.String("path", s.path), zap.Strings("problems", lines))
}

// problemLines renders a load error as one line per problem.
func problemLines(err error) []string {
	var ps Problems
	if errors.As(err, &ps) && len(ps) > 0 {
		return ps.Strings()
	}
	return []string{err.Error()}
}

func contentHash(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
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

// Policy returns the policy in force, or nil when none is (see OpenStore).
func (s *Store) Policy() *Policy { return s.cur.Load().policy }

// Resolve decides req with the policy in force; with none, it refuses (see
// OpenStore).
func (s *Store) Resolve(req Request) Decision {
	l := s.cur.Load()
	if l.policy == nil {
		return l.closed
	}
	return l.policy.Resolve(req)
}

// hashInForce is the hash of the policy in force, "" when none is.
func (s *Store) hashInForce() string {
	if p := s.Policy(); p != nil {
		return p.Hash()
	}
	return ""
}

// Status describes the policy in force and the last rejected file content.
func (s *Store) Status() StoreStatus {
	l := s.cur.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := StoreStatus{
		Path:        s.path,
		FailClosed:  l.policy == nil,
		LastError:   s.lastErr,
		LastErrorAt: s.lastErrAt,
		Problems:    append([]string(nil), s.problems...),
	}
	if l.policy != nil {
		st.Hash, st.LoadedAt, st.Rules = l.policy.Hash(), l.at, len(l.policy.rules)
		st.StaleRules = l.policy.StaleRules()
	}
	return st
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
	keeping := "keeping the last good policy"
	if s.Policy() == nil {
		keeping = "still no policy in force: every request is refused MAPPING_INVALID"
	}
	if err != nil {
		msg := err.Error()
		if msg != s.lastReadErr {
			s.lastReadErr = msg
			s.lastErr, s.lastErrAt, s.problems = msg+"; "+keeping, time.Now(), []string{msg}
			s.log.Error("mapping file unreadable; "+keeping,
				zap.String("path", s.path), zap.String("hash", s.hashInForce()), zap.Error(err))
		}
		s.pending = ""
		return
	}
	s.lastReadErr = ""
	hash := contentHash(data)
	if hash == s.hashInForce() {
		s.pending = ""
		if s.rejected != "" {
			// The file went back to the content in force.
			s.rejected, s.lastErr, s.lastErrAt, s.problems = "", "", time.Time{}, nil
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
		lines := problemLines(err)
		if s.Policy() == nil {
			s.lastErr = fmt.Sprintf("mapping file %s rejected (%s): %s; %s", s.path, hash, strings.Join(lines, "; "), keeping)
		} else {
			s.lastErr = fmt.Sprintf("mapping file %s rejected (%s): %s; keeping the last good policy (%s)",
				s.path, hash, strings.Join(lines, "; "), s.hashInForce())
		}
		s.lastErrAt, s.problems = time.Now(), lines
		s.log.Error("mapping file rejected; "+keeping,
			zap.String("path", s.path), zap.String("rejected_hash", hash),
			zap.String("hash", s.hashInForce()), zap.Strings("problems", lines))
		return
	}
	old := s.hashInForce()
	s.cur.Store(&loaded{policy: p, at: time.Now()})
	s.rejected, s.lastErr, s.lastErrAt, s.problems = "", "", time.Time{}, nil
	if old == "" {
		s.log.Info("mapping policy loaded: the file is good now, requests are decided again", zap.String("path", s.path),
			zap.String("hash", hash), zap.Int("rules", len(p.rules)))
		return
	}
	s.log.Info("mapping policy reloaded", zap.String("path", s.path),
		zap.String("hash", hash), zap.String("previous_hash", old), zap.Int("rules", len(p.rules)))
}
