#!/usr/bin/env bash
# Builds the release artifacts for every architecture under OUTDIR (make
# release), without docker:
#   conjur-swarm-plugin-VERSION-ARCH.tar.gz  the managed plugin directory
#       (config.json + rootfs/): tar -xzf it, then
#       docker plugin create NAME:TAG-ARCH conjur-swarm-plugin-VERSION-ARCH
#   conjur-swarm-agent-VERSION-ARCH.tar      the bootstrap-agent image in
#       `docker load` format, tagged conjur-swarm-agent:VERSION-ARCH, its
#       config naming ARCH (docker import cannot set it on Engine 20.10)
#   SHA256SUMS                               sha256sum of each artifact
# Every binary is checked to be built for its ARCH (go version -m) before
# it is packed.
#
#   plugin/release.sh OUTDIR VERSION GO LDFLAGS ARCH...
set -euo pipefail

out=$1 version=$2 go=$3 ldflags=$4
shift 4
archs=("$@")
[[ ${#archs[@]} -gt 0 ]] || { echo "release: name at least one architecture" >&2; exit 1; }
[[ $version =~ ^[A-Za-z0-9._+-]+$ ]] || { echo "release: VERSION '$version' must be letters, digits and ._+- only" >&2; exit 1; }

# shellcheck source=plugin/imagetar.sh
. "$(dirname "$0")/imagetar.sh"

# check_arch BINARY ARCH fails unless the Go build settings say GOARCH=ARCH.
check_arch() {
  local got
  got=$("$go" version -m "$1" | awk '$1 == "build" && $2 ~ /^GOARCH=/ { sub(/^GOARCH=/, "", $2); print $2 }')
  if [[ $got != "$2" ]]; then
    echo "release: $1 is built for '${got:-unknown}', not $2" >&2
    exit 1
  fi
  echo "release: $1: GOARCH=$got"
}

rm -rf "$out"
mkdir -p "$out/work"
for arch in "${archs[@]}"; do
  # The plugin directory, exactly as make plugin builds it.
  pdir="$out/work/conjur-swarm-plugin-$version-$arch"
  GOARCH=$arch NO_CREATE=1 plugin/build.sh "release:$version-$arch" "$pdir" "$go" "$ldflags"
  check_arch "$pdir/rootfs/conjur-swarm" "$arch"
  tar -C "$out/work" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -cf - "conjur-swarm-plugin-$version-$arch" | gzip -n >"$out/conjur-swarm-plugin-$version-$arch.tar.gz"

  # The agent image: one layer holding the binary (as plugin/image.sh).
  img="$out/work/agent-$arch"
  mkdir -p "$img/rootfs/tmp" "$img/rootfs/run/secrets" "$img/rootfs/run/docker/plugins"
  cp "$pdir/rootfs/conjur-swarm" "$img/rootfs/conjur-swarm"
  write_image_tar "$img/rootfs" "$arch" "conjur-swarm-agent:$version-$arch" '["/conjur-swarm","bootstrap-agent"]' \
    "conjur-swarm bootstrap agent" "$version" "$out/conjur-swarm-agent-$version-$arch.tar" >/dev/null
done
rm -rf "$out/work"
(cd "$out" && sha256sum -- conjur-swarm-* >SHA256SUMS)
echo "release: artifacts in $out:"
sed 's/^/  /' "$out/SHA256SUMS"
