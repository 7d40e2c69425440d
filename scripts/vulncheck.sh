#!/usr/bin/env bash
# govulncheck with no network: the vulnerability database is built here from
# the golang.org/x/vulndb module (the Go module proxy serves it) with that
# module's own cmd/indexdb, into VULNDB_DIR/VULNDB_VERSION/, once per
# version; govulncheck then reads it with -db file://. Exit status: 0 when no
# vulnerability is reachable from our code, 3 when one is, 1 on any other
# failure (with the reason).
#
#   scripts/vulncheck.sh                    # ./... with the Makefile's toolchain
#   GOTOOLCHAIN=go1.26.8 scripts/vulncheck.sh   # what an older standard library would expose
#
# Environment: GO (default go), VULNDB_VERSION, GOVULNCHECK_VERSION (pinned
# below; bump them to take newer findings), VULNDB_DIR (default
# ~/.cache/conjur-swarm/vulndb, outside the checkout, so a fresh clone reuses it).
set -euo pipefail

go=${GO:-go}
vulndb_version=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
govulncheck_version=${GOVULNCHECK_VERSION:-v1.10.0}
db="${VULNDB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/conjur-swarm/vulndb}/$vulndb_version"

if [[ ! -f "$db/index/db.json" ]]; then
  echo "vulncheck: building the vulnerability database $vulndb_version into $db (once per version)"
  src=$("$go" mod download -json "golang.org/x/vulndb@$vulndb_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d "$src/data/osv" ]] || { echo "vulncheck: golang.org/x/vulndb@$vulndb_version has no data/osv (is the module proxy reachable?)"; exit 1; }
  rm -rf "$db.tmp"
  mkdir -p "$(dirname "$db")"
  "$go" run "golang.org/x/vulndb/cmd/indexdb@$vulndb_version" -vulns "$src/data/osv" -out "$db.tmp"
  mv "$db.tmp" "$db"
fi

govulncheck=$(GO="$go" "$(dirname "$0")/gotool.sh" "golang.org/x/vuln/cmd/govulncheck@$govulncheck_version")

# govulncheck runs `go list` and type-checks the standard library of the go
# first on PATH: put the selected toolchain there (plain `go` may be older).
goroot=$("$go" env GOROOT)
echo "vulncheck: $("$go" env GOVERSION), database $vulndb_version, govulncheck $govulncheck_version"
PATH="$goroot/bin:$PATH" "$govulncheck" -db "file://$db" ./...
