package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeepClusterBlock(t *testing.T) {
	block := clusterBlockBegin + "\n## On a real swarm\n\n42 Gets\n" + clusterBlockEnd
	tests := []struct {
		name, rendered, previous, want string
	}{
		{
			name:     "ok/block carried over at the end",
			rendered: "# Benchmarks\n\nnew figures\n",
			previous: "# Benchmarks\n\nold figures\n\n" + block + "\n",
			want:     "# Benchmarks\n\nnew figures\n\n" + block + "\n",
		},
		{
			name:     "ok/no block: the rendered document alone",
			rendered: "# Benchmarks\n",
			previous: "# Benchmarks\n\nold\n",
			want:     "# Benchmarks\n",
		},
		{
			name:     "ok/no previous document",
			rendered: "# Benchmarks\n",
			want:     "# Benchmarks\n",
		},
		{
			name:     "ok/end marker before begin: nothing carried",
			rendered: "# Benchmarks\n",
			previous: clusterBlockEnd + "\n" + clusterBlockBegin + "\n",
			want:     "# Benchmarks\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keepClusterBlock(tt.rendered, tt.previous); got != tt.want {
				t.Errorf("keepClusterBlock:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// The document make bench writes keeps the cluster block the committed
// docs/benchmarks.md holds.
func TestWriteReportKeepsClusterBlock(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "benchmarks.md")
	block := clusterBlockBegin + "\nreal swarm figures\n" + clusterBlockEnd
	if err := os.WriteFile(doc, []byte("# old\n\n"+block+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := renderFixtures()
	var r report
	for _, v := range rep {
		r = v
		break
	}
	if err := writeReport(options{doc: doc}, r); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(got), block+"\n") {
		t.Errorf("make bench's document lost the cluster block; it ends with:\n%s", tail(string(got), 200))
	}
	if strings.Contains(string(got), "# old") {
		t.Error("the old document's own text was kept")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
