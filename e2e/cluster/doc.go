// Package cluster is the multi-node swarm lab: three managers and one worker
// on this one machine, each node its own dockerd in its own network, mount
// and PID namespaces, joined over a Linux bridge with private addresses, and
// the scenarios that only a real multi-manager swarm can show (issue 12):
// install on every manager, replicas on every node, leader failover, a
// rolling plugin upgrade, Conjur follower failover and the real
// leader-change storm.
//
// A node is started as
//
//	unshare -m -p --fork --kill-child=SIGKILL --mount-proc --propagation private \
//	  nsenter --net=/run/netns/csl-<id>-<node> sh -c '<mounts>; exec dockerd ...'
//
// (not `ip netns exec`, which remounts /sys and hides the cgroup mounts that
// dockerd needs). In its private mount namespace the node's own directories
// are bind-mounted over /run/docker and /var/lib/docker, so every node has
// the real default paths, as a real host does. The PID namespace makes
// dockerd its init: SIGKILL of a node's dockerd takes its containerd, its
// plugins and its containers with it, as a host crash does, and leaves
// nothing behind but files; each start empties the node's /run/docker
// first, as a host's /run is after a crash (see startScript for why).
//
// The switch (the bridge) lives in a network namespace of its own, so the
// host's firewall (br_netfilter and Docker's FORWARD DROP) never sees the
// lab's traffic; the host reaches the lab over one veth, which is where the
// Conjur-compatible servers listen. Every name starts with csl-<6 hex>; a
// run removes what killed runs left (namespaces, veths, cgroups, processes,
// directories) before it starts, under a lock.
//
// The suite needs root, nsenter, unshare, ip, dockerd and fuse-overlayfs;
// without them every test skips and says why. `make e2e-cluster` runs it and
// ends with one line, CLUSTER {json}, holding the measured figures.
package cluster
