#!/usr/bin/env bash
# Builds the agents' image from a rootfs holding only the static binary and
# loads it, reproducibly: the same commit gives the same image id, so a
# rebuild replaces nothing and leaves no untagged copy behind
# (plugin/imagetar.sh). Prints the image id (sha256:...) as the last line.
# Its entrypoint is the bootstrap agent; the rollout agent runs from the same
# image with --entrypoint "/conjur-swarm rollout-agent" (docs/rotation.md).
# Called by `make image`.
#
#   plugin/image.sh IMAGE OUTDIR GO LDFLAGS VERSION
set -euo pipefail

image=$1 out=$2 go=${3:-go} ldflags=${4:-} version=${5:-dev}
command -v docker >/dev/null || { echo "image: the docker CLI is not installed" >&2; exit 1; }
[[ $image == *:* ]] || image=$image:latest
# shellcheck source=plugin/imagetar.sh
. "$(dirname "$0")/imagetar.sh"

mkdir -p "$(dirname "$out")"
if command -v flock >/dev/null; then
  exec 9>"$(dirname "$out")/.image.lock"
  flock 9
fi

rm -rf "$out"
mkdir -p "$out/rootfs/tmp" "$out/rootfs/run/secrets" "$out/rootfs/run/docker/plugins"
CGO_ENABLED=0 "$go" build -trimpath -ldflags "$ldflags" -o "$out/rootfs/conjur-swarm" ./cmd/conjur-swarm
id=$(write_image_tar "$out/rootfs" "$("$go" env GOARCH)" "$image" '["/conjur-swarm","bootstrap-agent"]' \
  "conjur-swarm bootstrap agent" "$version" "$out/image.tar")
docker load -q -i "$out/image.tar" >/dev/null
rm -f "$out/image.tar"
[[ $(docker image inspect -f '{{.Id}}' "$image") == "$id" ]] || { echo "image: docker load did not give $image the id $id" >&2; exit 1; }
echo "image: built $image"
echo "$id"
