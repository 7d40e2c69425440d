#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, for FUZZTIME each.
# Targets are discovered with `go test -list` in every package, so a new
# FuzzXxx is picked up without editing this script. A failing input is
# written by `go test` to the package's testdata/fuzz/FuzzXxx/ and becomes a
# seed that plain `go test` replays: commit it with the fix.
#
#   FUZZTIME=60s scripts/fuzz.sh            # every target, 60 s each
#   FUZZTIME=10s scripts/fuzz.sh ./internal/policy/...
#
# Environment: GO (default go), FUZZTIME (default 30s), FUZZMINIMIZETIME
# (default 5s: how long to minimize a new input; the Go default of 60s
# stalls short runs while interesting inputs are minimized).
set -euo pipefail

go=${GO:-go}
fuzztime=${FUZZTIME:-30s}
minimize=${FUZZMINIMIZETIME:-5s}
patterns=("$@")
[[ ${#patterns[@]} -gt 0 ]] || patterns=(./...)

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

summary=()
failed=()
total_start=$(date +%s)
for pkg in $("$go" list "${patterns[@]}"); do
  # -short: the e2e package's TestMain then skips its Docker set-up.
  targets=$("$go" test -short -run '^$' -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
  for target in $targets; do
    log="$logdir/$target.log"
    echo "== $pkg $target ($fuzztime)"
    start=$(date +%s)
    if "$go" test -short -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" \
        -fuzzminimizetime "$minimize" "$pkg" >"$log" 2>&1; then
      result=ok
    else
      result=FAIL
      failed+=("$pkg $target")
    fi
    secs=$(( $(date +%s) - start ))
    execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    tail -n 3 "$log"
    if [[ $result == FAIL ]]; then
      grep -E 'Failing input written to|--- FAIL|panic:' "$log" || cat "$log"
    fi
    summary+=("$(printf '%-5s %-26s %-52s %4ss %10s execs' "$result" "$target" "$pkg" "$secs" "${execs:-?}")")
  done
done

echo
echo "fuzz summary (FUZZTIME=$fuzztime per target, $(( ($(date +%s) - total_start) / 60 )) min in all):"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "failing targets (their inputs are now seeds under testdata/fuzz/; fix, then commit them):"
  printf '  %s\n' "${failed[@]}"
  git status --short -- '*testdata/fuzz/*' || true
  exit 1
fi
