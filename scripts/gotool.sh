#!/usr/bin/env bash
# Prints the path of a Go tool at a pinned version, built by the selected
# toolchain, installing it the first time into a directory named by both
# (~/.cache/conjur-swarm/tools/GOVERSION/VERSION/). A tool that type-checks
# code (staticcheck, govulncheck) must be built by a Go at least as new as
# the standard library it reads: one built by an older go in GOPATH/bin
# fails with "package requires newer Go version".
#
#   scripts/gotool.sh MODULE/cmd/NAME@VERSION
#
# Environment: GO (default go).
set -euo pipefail

go=${GO:-go}
pkg=${1:?usage: scripts/gotool.sh MODULE/cmd/NAME@VERSION}
name=$(basename "${pkg%@*}")
dir="${XDG_CACHE_HOME:-$HOME/.cache}/conjur-swarm/tools/$("$go" env GOVERSION)/${pkg##*@}"
if [[ ! -x $dir/$name ]]; then
  echo "gotool: installing $pkg with $("$go" env GOVERSION) into $dir" >&2
  GOBIN=$dir "$go" install "$pkg" >&2
fi
echo "$dir/$name"
