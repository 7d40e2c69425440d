package swarmapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeEngine serves recorded Engine API answers on a unix socket and
// records the updates it receives.
type fakeEngine struct {
	t      *testing.T
	socket string

	mu       sync.Mutex
	services []byte // GET /services answer
	secrets  []byte
	updates  []update
	fail     int    // when set, every request answers this status
	failMsg  string // with this message
}

type update struct {
	path, version string
	body          []byte
}

func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	f := &fakeEngine{t: t, socket: filepath.Join(t.TempDir(), "docker.sock")}
	f.services = readTestdata(t, "services.json")
	f.secrets = readTestdata(t, "secrets.json")
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != 0 {
		w.WriteHeader(f.fail)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": f.failMsg})
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/v"+APIVersion)
	if !ok {
		http.Error(w, "no API version in "+r.URL.Path, http.StatusBadRequest)
		return
	}
	switch {
	case r.Method == http.MethodGet && path == "/services":
		_, _ = w.Write(f.services)
	case r.Method == http.MethodGet && path == "/secrets":
		_, _ = w.Write(f.secrets)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/services/"):
		var list []json.RawMessage
		_ = json.Unmarshal(f.services, &list)
		for _, s := range list {
			var id struct{ ID string }
			_ = json.Unmarshal(s, &id)
			if id.ID == strings.TrimPrefix(path, "/services/") {
				_, _ = w.Write(s)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"service x not found"}`)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/update"):
		body, _ := io.ReadAll(r.Body)
		f.updates = append(f.updates, update{path: path, version: r.URL.Query().Get("version"), body: body})
		_, _ = io.WriteString(w, `{"Warnings":["image example could not be accessed"]}`)
	default:
		http.Error(w, "unexpected "+r.Method+" "+path, http.StatusTeapot)
	}
}

func TestServices(t *testing.T) {
	f := newFakeEngine(t)
	got, err := New(f.socket).Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Service{
		{
			ID: "ncynfp4w6y59xxwjqs00u863j", Version: 13, Name: "web",
			Labels:      map[string]string{"conjur.rollout": "true"},
			Image:       "registry.example.com/web:1.4@sha256:abababababababababababababababababababababababababababababababab",
			Secrets:     []SecretRef{{SecretID: "nqfg1itecr56aoz19yk8u0xvb", SecretName: "db_password", Target: "db"}},
			ForceUpdate: 1,
			Update: UpdateStatus{State: UpdateUpdating, Message: "update in progress",
				StartedAt: time.Date(2026, 11, 30, 16, 27, 11, 611402402, time.UTC)},
		},
		{ID: "x3plainservice00000000000", Version: 7, Name: "plain", Image: "busybox"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Services (-want +got):\n%s", diff)
	}
}

func TestSecrets(t *testing.T) {
	f := newFakeEngine(t)
	got, err := New(f.socket).Secrets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Secret{
		{ID: "nqfg1itecr56aoz19yk8u0xvb", Name: "db_password", Labels: map[string]string{"conjur.variable": "apps/demo/db-password"}, Driver: "cyberark/conjur:latest"},
		{ID: "q1plainsecret000000000000", Name: "plain-secret", Labels: map[string]string{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Secrets (-want +got):\n%s", diff)
	}
}

// A forced update sends the spec back as the engine gave it, with only
// TaskTemplate.ForceUpdate incremented, at the version read.
func TestForceUpdateSendsTheSpecBackWithTheCounterIncremented(t *testing.T) {
	f := newFakeEngine(t)
	warnings, err := New(f.socket).ForceUpdate(context.Background(), "ncynfp4w6y59xxwjqs00u863j", 13)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 {
		t.Errorf("warnings %q, want the engine's one", warnings)
	}
	if len(f.updates) != 1 {
		t.Fatalf("%d updates sent, want 1", len(f.updates))
	}
	u := f.updates[0]
	if u.path != "/services/ncynfp4w6y59xxwjqs00u863j/update" || u.version != "13" {
		t.Errorf("update sent to %s?version=%s, want /services/ncynfp4w6y59xxwjqs00u863j/update?version=13", u.path, u.version)
	}
	var services []map[string]any
	if err := json.Unmarshal(f.services, &services); err != nil {
		t.Fatal(err)
	}
	want := services[0]["Spec"].(map[string]any)
	want["TaskTemplate"].(map[string]any)["ForceUpdate"] = float64(2)
	var got map[string]any
	if err := json.Unmarshal(u.body, &got); err != nil {
		t.Fatalf("update body is not JSON: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("update body (-want +got):\n%s", diff)
	}
}

func TestForceUpdateErrors(t *testing.T) {
	tests := []struct {
		name     string
		id       string
		version  uint64
		fail     int
		failMsg  string
		status   int
		contains string
	}{
		{name: "fail/the service changed since it was read", id: "ncynfp4w6y59xxwjqs00u863j", version: 12,
			status: http.StatusConflict, contains: "changed since it was read"},
		{name: "fail/the service is gone", id: "gone", version: 1, status: http.StatusNotFound, contains: "not found"},
		{name: "fail/not a manager", id: "ncynfp4w6y59xxwjqs00u863j", version: 13, fail: http.StatusServiceUnavailable,
			failMsg: "This node is not a swarm manager.", status: http.StatusServiceUnavailable, contains: "not a swarm manager"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEngine(t)
			f.fail, f.failMsg = tt.fail, tt.failMsg
			_, err := New(f.socket).ForceUpdate(context.Background(), tt.id, tt.version)
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Status != tt.status || !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("ForceUpdate error %v, want status %d containing %q", err, tt.status, tt.contains)
			}
			if len(f.updates) != 0 {
				t.Errorf("%d updates sent, want none", len(f.updates))
			}
			if tt.status == http.StatusNotFound && !errors.Is(err, ErrNotFound) {
				t.Errorf("errors.Is(%v, ErrNotFound) is false", err)
			}
		})
	}
}

func TestUnreachableEngineSaysWhatToMount(t *testing.T) {
	_, err := New(filepath.Join(t.TempDir(), "absent.sock")).Services(context.Background())
	if err == nil || !strings.Contains(err.Error(), "with access to the Docker socket") {
		t.Fatalf("error %v, want one that says what access it needs", err)
	}
}

func TestUpdateStates(t *testing.T) {
	for _, tt := range []struct {
		s                  UpdateState
		inProgress, paused bool
	}{
		{UpdateNone, false, false},
		{UpdateUpdating, true, false},
		{UpdatePaused, false, true},
		{UpdateCompleted, false, false},
		{UpdateRollbackStarted, true, false},
		{UpdateRollbackPaused, false, true},
		{UpdateRollbackCompleted, false, false},
	} {
		if tt.s.InProgress() != tt.inProgress || tt.s.Paused() != tt.paused {
			t.Errorf("%q: InProgress %t Paused %t, want %t %t", tt.s, tt.s.InProgress(), tt.s.Paused(), tt.inProgress, tt.paused)
		}
	}
}

func TestNormalizeDriver(t *testing.T) {
	for in, want := range map[string]string{
		"cyberark/conjur":                   "cyberark/conjur:latest",
		"cyberark/conjur:latest":            "cyberark/conjur:latest",
		"docker.io/cyberark/conjur:latest":  "cyberark/conjur:latest",
		"cyberark/conjur:1.0":               "cyberark/conjur:1.0",
		"conjur":                            "conjur:latest",
		"docker.io/library/conjur":          "conjur:latest",
		"registry.local:5000/team/conjur":   "registry.local:5000/team/conjur:latest",
		"registry.local:5000/team/conjur:2": "registry.local:5000/team/conjur:2",
	} {
		if got := NormalizeDriver(in); got != want {
			t.Errorf("NormalizeDriver(%q) = %q, want %q", in, got, want)
		}
	}
}
