package main

// limitsText is the analysis of what bounds each figure, written from
// profiles of the default storm (see docs/benchmarks.md).
const limitsText = `TODO
`
