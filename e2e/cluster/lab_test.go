package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
)

// labPrefix starts every name the lab gives: network namespaces, links,
// cgroups, directories. The start-up sweep removes only what carries it.
const labPrefix = "csl-"

// Host paths the lab uses.
const (
	netnsDir   = "/run/netns"
	cgroupRoot = "/sys/fs/cgroup"
	lockPath   = "/tmp/csl-lab.lock"
)

// lab is a swarm of nodes on this machine. Build it with newLab; close
// removes every trace of it.
type lab struct {
	id     string // csl-<6 hex>
	dir    string // /tmp/csl-<6 hex>
	subnet string // first three octets, "10.a.b"
	hostIP string // the host's end of the lab network, subnet.1
	nodes  []*node
	logf   func(format string, args ...any)
}

// node is one dockerd in its own namespaces.
type node struct {
	lab     *lab
	name    string // m1, m2, m3, w1
	manager bool
	ip      string
	dir     string // lab.dir/name: run/, lib/, daemon.json, dockerd.log
	sock    string // the daemon's API socket, on the host's file system
	netns   string // csl-<id>-<name>; also the cgroup and the host name

	mu     sync.Mutex
	unsh   *os.Process   // the unshare process holding the node
	exited chan struct{} // closed when unsh has exited
	id     string        // swarm node ID
}

// sh runs a host command with a one-minute deadline.
func sh(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := harness.Run(ctx, nil, name, args...)
	return strings.TrimSpace(out), err
}

// labUsable returns why this machine cannot run the lab, or "".
func labUsable() string {
	if os.Geteuid() != 0 {
		return "not root: the lab creates network namespaces, a bridge and dockerd processes"
	}
	for _, c := range []string{"nsenter", "unshare", "ip", "dockerd", "fuse-overlayfs", "docker", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			return "no " + c + " on PATH"
		}
	}
	for _, p := range []string{"/dev/fuse", "/run/docker", "/var/lib/docker", filepath.Join(cgroupRoot, "pids", "cgroup.procs")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Sprintf("%s is missing (the lab needs fuse, the default Docker paths to mount over, and cgroup v1 with the pids controller)", p)
		}
	}
	out, err := sh("unshare", "--help")
	if err != nil || !strings.Contains(out, "--kill-child") {
		return "unshare has no --kill-child (util-linux 2.32 or later is needed)"
	}
	return ""
}

// lockLab serialises labs on this machine: the sweep at start may then
// remove every csl- object, since none belongs to a live run.
func lockLab(wait time.Duration) (func(), error) {
	return harness.Lock(lockPath, wait, pollEvery)
}

// newLab builds the network and starts one dockerd per node; it does not
// form the swarm (see formSwarm). On error, what it made is removed.
func newLab(managers, workers int, logf func(string, ...any)) (l *lab, err error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	l = &lab{id: labPrefix + hex.EncodeToString(b[:]), logf: logf}
	l.dir = filepath.Join(os.TempDir(), l.id)
	defer func() {
		if err != nil {
			l.close()
			l = nil
		}
	}()
	if err := os.Mkdir(l.dir, 0o700); err != nil {
		return l, err
	}
	if l.subnet, err = freeSubnet(b); err != nil {
		return l, err
	}
	l.hostIP = l.subnet + ".1"
	for i := 1; i <= managers+workers; i++ {
		n := &node{lab: l, manager: i <= managers, ip: fmt.Sprintf("%s.%d", l.subnet, 10+i)}
		if n.manager {
			n.name = fmt.Sprintf("m%d", i)
		} else {
			n.name = fmt.Sprintf("w%d", i-managers)
		}
		n.dir = filepath.Join(l.dir, n.name)
		n.sock = filepath.Join(n.dir, "docker.sock")
		n.netns = l.id + "-" + n.name
		l.nodes = append(l.nodes, n)
	}
	if err := l.buildNetwork(); err != nil {
		return l, err
	}
	for _, n := range l.nodes {
		if err := n.prepare(); err != nil {
			return l, err
		}
		if err := n.start(); err != nil {
			return l, err
		}
	}
	return l, nil
}

// freeSubnet picks 10.a.b.0/24 from the random bytes, avoiding any subnet
// the host already has an address or a route in.
func freeSubnet(b [3]byte) (string, error) {
	used, err := sh("ip", "-o", "addr")
	if err != nil {
		return "", err
	}
	routes, err := sh("ip", "route")
	if err != nil {
		return "", err
	}
	used += "\n" + routes
	for i := 0; i < 64; i++ {
		s := fmt.Sprintf("10.%d.%d", 100+(int(b[0])+i)%150, (int(b[1])+7*i)%256)
		if !strings.Contains(used, " "+s+".") && !strings.Contains(used, "\n"+s+".") && !strings.HasPrefix(used, s+".") {
			return s, nil
		}
	}
	return "", errors.New("no free 10.x.y.0/24 subnet for the lab")
}

// buildNetwork makes the switch (a bridge in its own network namespace, out
// of reach of the host's firewall), the host's veth into it and one
// namespace and veth per node.
func (l *lab) buildNetwork() error {
	sw := l.id + "-sw"
	hostLink := l.id + "-h"
	steps := [][]string{
		{"netns", "add", sw},
		{"-n", sw, "link", "set", "lo", "up"},
		{"-n", sw, "link", "add", "br0", "type", "bridge"},
		{"-n", sw, "link", "set", "br0", "up"},
		{"link", "add", hostLink, "type", "veth", "peer", "name", "host", "netns", sw},
		{"-n", sw, "link", "set", "host", "master", "br0", "up"},
		{"addr", "add", l.hostIP + "/24", "dev", hostLink},
		{"link", "set", hostLink, "up"},
	}
	for _, n := range l.nodes {
		steps = append(steps,
			[]string{"netns", "add", n.netns},
			[]string{"-n", n.netns, "link", "set", "lo", "up"},
			[]string{"-n", sw, "link", "add", n.name, "type", "veth", "peer", "name", "eth0", "netns", n.netns},
			[]string{"-n", sw, "link", "set", n.name, "master", "br0", "up"},
			[]string{"-n", n.netns, "addr", "add", n.ip + "/24", "dev", "eth0"},
			[]string{"-n", n.netns, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if _, err := sh("ip", s...); err != nil {
			return fmt.Errorf("lab network: %w", err)
		}
	}
	return nil
}

// prepare makes the node's directories, daemon config and cgroups.
func (n *node) prepare() error {
	for _, d := range []string{"run", "lib"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o700); err != nil {
			return err
		}
	}
	// The host's /etc/docker/daemon.json sets data-root; the node has its own.
	if err := os.WriteFile(filepath.Join(n.dir, "daemon.json"), []byte(`{"storage-driver": "fuse-overlayfs", "log-driver": "json-file"}`+"\n"), 0o600); err != nil {
		return err
	}
	return makeCgroups(n.netns)
}

// makeCgroups creates cgroup name in every v1 hierarchy (cpuset seeded from
// its parent) and in the unified one: the node's dockerd moves itself there,
// so its plugins' cgroups (created relative to dockerd's own) and its
// containers' (--cgroup-parent) all lie under it.
func makeCgroups(name string) error {
	hier, err := filepath.Glob(filepath.Join(cgroupRoot, "*", "cgroup.procs"))
	if err != nil {
		return err
	}
	for _, procs := range hier {
		h := filepath.Dir(procs)
		d := filepath.Join(h, name)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cgroup %s: %w", d, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %w", filepath.Join(d, f), err)
				}
			}
		}
	}
	return nil
}

// startScript runs as the node's PID 1 inside its namespaces: it moves into
// the node's cgroups, mounts a private /run and the node's own directories
// over /run/docker and /var/lib/docker, and becomes dockerd.
//
// The node's exec-root ($dir/run, its /run/docker) is emptied first, as a
// host's /run is after a crash. A killed dockerd leaves
// containerd/containerd.pid there; dockerd 20.10 (libcontainerd's
// supervisor) reads it and, when a process with that PID is alive, takes it
// for its containerd, waits for a socket nobody opens and exits after 15 s
// with "timeout waiting for containerd to start". In the node's new PID
// namespace that small PID is another live process: containerd was PID 13,
// after the script's few commands and dockerd's first threads, and on a
// restart dockerd's own sixth thread gets 13 or not, by timing.
const startScript = `set -e
cg=$1 dir=$2
hostname "$cg"
for procs in /sys/fs/cgroup/*/cgroup.procs; do echo 0 > "${procs%/cgroup.procs}/$cg/cgroup.procs"; done
rm -rf "$dir/run"
mkdir -m 0700 "$dir/run"
mount -t tmpfs -o mode=0755 "$cg-run" /run
mkdir -p /run/docker
mount --bind "$dir/run" /run/docker
mount --bind "$dir/lib" /var/lib/docker
rm -f "$dir/docker.sock"
exec dockerd --config-file "$dir/daemon.json" -H "unix://$dir/docker.sock" \
  --bridge none --iptables=false --ip6tables=false --cgroup-parent "/$cg" --log-level info
`

// errExitedDuringStart: the node's dockerd exited before its API answered.
var errExitedDuringStart = errors.New("dockerd exited during start")

// start starts the node's dockerd and waits until its API answers. Like a
// host's service manager, it starts dockerd again (at most three times in
// all) when it exits during start; each start runs startScript again, so
// each begins from an empty exec-root.
func (n *node) start() error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = n.startOnce(); !errors.Is(err, errExitedDuringStart) {
			return err
		}
		n.mu.Lock()
		n.unsh = nil
		n.mu.Unlock()
		if kerr := killCgroup(n.netns, time.Minute); kerr != nil {
			return errors.Join(err, kerr)
		}
	}
	return err
}

func (n *node) startOnce() error {
	logf, err := os.OpenFile(filepath.Join(n.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	var from int64
	if fi, err := logf.Stat(); err == nil {
		from = fi.Size()
	}
	cmd := exec.Command("unshare", "-m", "-u", "-p", "--fork", "--kill-child=SIGKILL", "--mount-proc", "--propagation", "private",
		"nsenter", "--net="+filepath.Join(netnsDir, n.netns),
		"sh", "-c", startScript, "node-start", n.netns, n.dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test process dies, unshare dies, and --kill-child takes the
	// node's whole PID namespace with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("node %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n.mu.Lock()
	n.unsh, n.exited = cmd.Process, exited
	n.mu.Unlock()

	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := n.docker("version", "--format", "{{.Server.Version}}"); err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("node %s: %w; what it said of containerd and its errors:\n%s\nthe end of its log:\n%s", n.name, errExitedDuringStart, n.startNotes(from), n.logTail(15))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: dockerd did not answer within 2m; its log:\n%s", n.name, n.logTail(30))
		}
		time.Sleep(pollEvery)
	}
}

// dockerdPID is the host PID of the node's dockerd (its PID namespace's
// init), or 0 when it is not running.
func (n *node) dockerdPID() int {
	n.mu.Lock()
	p := n.unsh
	n.mu.Unlock()
	if p == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.Pid, p.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// kill SIGKILLs the node's dockerd: the kernel then kills every process of
// the node's PID namespace (containerd, plugins, containers), as a crash
// would. It waits until none is left.
func (n *node) kill() error {
	n.mu.Lock()
	p, exited := n.unsh, n.exited
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	if pid := n.dockerdPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	} else {
		_ = p.Kill()
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		_ = p.Kill()
		<-exited
	}
	n.mu.Lock()
	n.unsh = nil
	n.mu.Unlock()
	return killCgroup(n.netns, time.Minute)
}

// killCgroup SIGKILLs every process left in cgroup name (and below) and
// waits until it is empty.
func killCgroup(name string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		pids := cgroupPIDs(filepath.Join(cgroupRoot, "pids", name))
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v still alive after %s", name, pids, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cgroupPIDs lists the processes of a cgroup directory and its children.
func cgroupPIDs(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// removeCgroups removes cgroup name and everything below it in every
// hierarchy (the cgroups must be empty).
func removeCgroups(name string) error {
	var errs []error
	hier, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", name))
	for _, top := range hier {
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- { // children first
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// logTail is the end of the node's dockerd log, for failure messages.
func (n *node) logTail(lines int) string {
	b, err := os.ReadFile(filepath.Join(n.dir, "dockerd.log"))
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// startNotes is what dockerd logged from byte offset from on about
// containerd (libcontainerd's lines) and its errors: where a failed start
// says why, which the end of the log, full of gRPC retries, does not.
func (n *node) startNotes(from int64) string {
	f, err := os.Open(filepath.Join(n.dir, "dockerd.log"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return err.Error()
	}
	var notes []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "libcontainerd") || strings.Contains(l, "level=error") || strings.Contains(l, "level=fatal") || !strings.HasPrefix(l, "time=") {
			notes = append(notes, l)
		}
	}
	if len(notes) > 20 {
		notes = notes[len(notes)-20:]
	}
	return strings.Join(notes, "\n")
}

// close kills every node and removes the network, the cgroups and the
// directories. It is safe on a half-built lab.
func (l *lab) close() error {
	var errs []error
	for _, n := range l.nodes {
		errs = append(errs, n.kill())
	}
	for _, n := range l.nodes {
		errs = append(errs, killCgroup(n.netns, time.Minute), removeCgroups(n.netns))
	}
	errs = append(errs, removeNetwork(l.id+"-"))
	if l.dir != "" {
		errs = append(errs, os.RemoveAll(l.dir))
	}
	return errors.Join(errs...)
}

// removeNetwork deletes the network namespaces and host links whose name
// starts with prefix, and waits until the kernel has released the links.
func removeNetwork(prefix string) error {
	var errs []error
	names, _ := filepath.Glob(filepath.Join(netnsDir, prefix+"*"))
	for _, p := range names {
		if _, err := sh("ip", "netns", "del", filepath.Base(p)); err != nil {
			errs = append(errs, err)
		}
	}
	links, _ := hostLinks(prefix)
	for _, link := range links {
		_, _ = sh("ip", "link", "del", link)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		links, err := hostLinks(prefix)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		if len(links) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("links %v still present a minute after their namespaces were deleted", links))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.Join(errs...)
}

// hostLinks lists the host's links whose name starts with prefix.
func hostLinks(prefix string) ([]string, error) {
	out, err := sh("ip", "-o", "link", "show")
	if err != nil {
		return nil, err
	}
	var links []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, prefix) {
			links = append(links, name)
		}
	}
	return links, nil
}

// sweepStale removes what earlier labs that were killed left behind: the
// processes in csl- cgroups, those cgroups, the csl- namespaces and links,
// and the /tmp/csl-* directories. Call it only while holding the lab lock.
func sweepStale() error {
	var errs []error
	cgs, _ := filepath.Glob(filepath.Join(cgroupRoot, "pids", labPrefix+"*"))
	for _, cg := range cgs {
		errs = append(errs, killCgroup(filepath.Base(cg), time.Minute))
	}
	seen := map[string]bool{}
	all, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", labPrefix+"*"))
	for _, cg := range all {
		if name := filepath.Base(cg); !seen[name] {
			seen[name] = true
			errs = append(errs, removeCgroups(name))
		}
	}
	errs = append(errs, removeNetwork(labPrefix))
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), labPrefix+"*"))
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			errs = append(errs, os.RemoveAll(d))
		}
	}
	return errors.Join(errs...)
}
