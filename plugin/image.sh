#!/usr/bin/env bash
# Builds the agents' image with `docker import` from a rootfs holding only the
# static binary, and prints the image id (sha256:...) as the last line. Its
# entrypoint is the bootstrap agent; the rollout agent runs from the same
# image with --entrypoint "/conjur-swarm rollout-agent" (docs/rotation.md).
# Called by `make image`.
#
#   plugin/image.sh IMAGE OUTDIR GO LDFLAGS
set -euo pipefail

image=$1 out=$2 go=${3:-go} ldflags=${4:-}
command -v docker >/dev/null || { echo "image: the docker CLI is not installed" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
if command -v flock >/dev/null; then
  exec 9>"$(dirname "$out")/.image.lock"
  flock 9
fi

rm -rf "$out"
mkdir -p "$out/rootfs/tmp" "$out/rootfs/run/secrets" "$out/rootfs/run/docker/plugins"
CGO_ENABLED=0 "$go" build -trimpath -ldflags "$ldflags" -o "$out/rootfs/conjur-swarm" ./cmd/conjur-swarm
id=$(tar -C "$out/rootfs" -c . | docker import \
  -c 'ENTRYPOINT ["/conjur-swarm", "bootstrap-agent"]' \
  -m "conjur-swarm bootstrap agent" - "$image")
echo "image: built $image"
echo "$id"
