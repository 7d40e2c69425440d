package privs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDropLeavesNoCapability builds a static program that calls Drop (the
// test binary itself may be built with cgo, as under -race, where Drop
// cannot act on every thread), runs it as this user, and reads what the
// kernel says of it: every capability set empty and NoNewPrivs 1; it can
// still read a root-owned 0600 file, and can no longer chown it.
func TestDropLeavesNoCapability(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root: as another user there is no capability to drop (CI=true: run the tests as root, as .ci/run does)")
		}
		t.Skip("needs root: as another user there is no capability to drop")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "dropper")
	build := exec.Command("go", "build", "-o", bin, "./testdata/dropper")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	secret := filepath.Join(dir, "credential.json")
	if err := os.WriteFile(secret, []byte(`{"jwt":"a.b.c"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, secret).CombinedOutput()
	if err != nil {
		t.Fatalf("dropper: %v\n%s", err, out)
	}
	st, err := ParseStatus(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !st.Dropped() {
		t.Errorf("after Drop: %+v, want every set 0 and NoNewPrivs", st)
	}
	if !strings.Contains(string(out), "READ-OK") {
		t.Errorf("the root-owned 0600 file is unreadable after Drop:\n%s", out)
	}
	if !strings.Contains(string(out), "CHOWN-REFUSED") {
		t.Errorf("chown still works after Drop (CAP_CHOWN kept):\n%s", out)
	}
}

func TestParseStatus(t *testing.T) {
	root := "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n"
	st, err := ParseStatus([]byte(root))
	if err != nil || st.Dropped() || st.CapEff != 0x1ffffffffff {
		t.Errorf("root: %+v %v", st, err)
	}
	dropped := strings.NewReplacer("000001ffffffffff", "0000000000000000", "NoNewPrivs:\t0", "NoNewPrivs:\t1").Replace(root)
	if st, err := ParseStatus([]byte(dropped)); err != nil || !st.Dropped() {
		t.Errorf("dropped: %+v %v", st, err)
	}
	if _, err := ParseStatus([]byte("CapEff:\t0\n")); err == nil || !strings.Contains(err.Error(), "no CapInh line") {
		t.Errorf("missing lines: %v", err)
	}
	if _, err := ParseStatus([]byte(strings.Replace(root, "CapBnd:\t000001ffffffffff", "CapBnd:\tzz", 1))); err == nil {
		t.Error("a bad CapBnd accepted")
	}
}
