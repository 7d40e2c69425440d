package main

import "strings"

// The real-swarm storm that `make e2e-cluster` measures (e2e/cluster) lives
// in docs/benchmarks.md between these markers. make bench renders the rest
// of the document and carries that block over as it finds it, at the end.
const (
	clusterBlockBegin = "<!-- e2e-cluster:begin -->"
	clusterBlockEnd   = "<!-- e2e-cluster:end -->"
)

// keepClusterBlock appends to rendered the cluster block of previous (the
// document being replaced), when it has one.
func keepClusterBlock(rendered, previous string) string {
	begin := strings.Index(previous, clusterBlockBegin)
	end := strings.Index(previous, clusterBlockEnd)
	if begin < 0 || end < begin {
		return rendered
	}
	return strings.TrimRight(rendered, "\n") + "\n\n" + previous[begin:end+len(clusterBlockEnd)] + "\n"
}
