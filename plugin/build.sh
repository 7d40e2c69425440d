#!/usr/bin/env bash
# Builds the managed plugin directory (config.json + rootfs/ with the static
# binary and CA certificates) and creates the plugin from it, replacing an
# older plugin of exactly that name. Called by `make plugin`.
#
#   plugin/build.sh NAME:TAG OUTDIR GO LDFLAGS
set -euo pipefail

name=$1 out=$2 go=${3:-go} ldflags=${4:-}
ca=/etc/ssl/certs/ca-certificates.crt

if [[ ! -r $ca ]]; then
  echo "plugin: $ca is missing; install the ca-certificates package" >&2
  exit 1
fi
command -v docker >/dev/null || { echo "plugin: the docker CLI is not installed" >&2; exit 1; }

# One build at a time in this tree (make plugin may run concurrently).
mkdir -p "$(dirname "$out")"
if command -v flock >/dev/null; then
  exec 9>"$(dirname "$out")/.plugin.lock"
  flock 9
fi

rm -rf "$out"
mkdir -p "$out/rootfs/etc/ssl/certs" "$out/rootfs/run/docker/plugins" "$out/rootfs/tmp" \
  "$out/rootfs/etc/conjur-swarm/mapping" "$out/rootfs/etc/conjur-swarm/ca" "$out/rootfs/etc/conjur-swarm/identity"
CGO_ENABLED=0 "$go" build -trimpath -ldflags "$ldflags" -o "$out/rootfs/conjur-swarm" ./cmd/conjur-swarm
cp "$ca" "$out/rootfs/etc/ssl/certs/ca-certificates.crt"
cp plugin/config.json "$out/config.json"

if docker plugin inspect "$name" >/dev/null 2>&1; then
  echo "plugin: removing the existing plugin $name"
  docker plugin rm --force "$name" >/dev/null
fi
docker plugin create "$name" "$out" >/dev/null
echo "plugin: created $name (disabled); next: docker plugin set $name CONJUR_APPLIANCE_URL=... ; docker plugin enable $name"
