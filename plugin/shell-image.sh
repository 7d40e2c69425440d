#!/usr/bin/env bash
# Builds a small image with a shell and the usual tools, from the host's own
# busybox and the shared libraries it links (no registry, no download), for
# the docs' checks (`docker exec ... cat /run/secrets/NAME`) and example
# services. Reproducible like the agent image (plugin/imagetar.sh); prints
# the image id (sha256:...) as the last line. Called by `make shell-image`.
#
#   plugin/shell-image.sh IMAGE OUTDIR
set -euo pipefail

image=$1 out=$2
command -v docker >/dev/null || { echo "shell-image: the docker CLI is not installed" >&2; exit 1; }
bb=$(command -v busybox) || { echo "shell-image: busybox is not installed (apt-get install busybox)" >&2; exit 1; }
[[ $image == *:* ]] || image=$image:latest
# shellcheck source=plugin/imagetar.sh
. "$(dirname "$0")/imagetar.sh"

mkdir -p "$(dirname "$out")"
exec 9>"$(dirname "$out")/.shell-image.lock"
flock 9
rm -rf "$out"
mkdir -p "$out/rootfs/bin" "$out/rootfs/tmp" "$out/rootfs/run/secrets"
cp "$bb" "$out/rootfs/bin/busybox"
# The loader and libraries busybox needs, at the paths it looks for them.
for lib in $(ldd "$bb" | grep -o '/[^ ]*'); do
  mkdir -p "$out/rootfs$(dirname "$lib")"
  cp -L "$lib" "$out/rootfs$lib"
done
for tool in sh cat ls wc sleep env head tail grep sha256sum id stat; do
  ln -s busybox "$out/rootfs/bin/$tool"
done
id=$(write_image_tar "$out/rootfs" "$(dpkg --print-architecture 2>/dev/null || uname -m)" "$image" '["/bin/busybox"]' \
  "conjur-swarm test shell (host busybox)" "busybox" "$out/image.tar")
docker load -q -i "$out/image.tar" >/dev/null
rm -f "$out/image.tar"
echo "shell-image: built $image (run it as: IMAGE sleep 86400; docker exec CONTAINER cat /run/secrets/NAME)"
echo "$id"
