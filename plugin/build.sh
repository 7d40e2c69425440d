#!/usr/bin/env bash
# Builds the managed plugin directory (config.json + rootfs/ with the static
# binary and CA certificates) and creates the plugin from it, replacing an
# older, disabled plugin of exactly that name. An enabled plugin of that name
# is the live one: it is replaced only with FORCE=1. Called by `make plugin`.
#
#   [FORCE=1] [GOARCH=arm64] [NO_CREATE=1] plugin/build.sh NAME:TAG OUTDIR GO LDFLAGS
#
# GOARCH builds the binary for another architecture (default: the host's);
# NO_CREATE=1 only builds OUTDIR (make release), without docker.
set -euo pipefail

name=$1 out=$2 go=${3:-go} ldflags=${4:-}
ca=/etc/ssl/certs/ca-certificates.crt

if [[ ! -r $ca ]]; then
  echo "plugin: $ca is missing; install the ca-certificates package" >&2
  exit 1
fi
[[ ${NO_CREATE:-} == 1 ]] || command -v docker >/dev/null || { echo "plugin: the docker CLI is not installed" >&2; exit 1; }

# Refuse before building: replacing an enabled plugin drops its settings and
# fails every secret it serves until it is set up again.
if [[ ${NO_CREATE:-} != 1 && $(docker plugin inspect -f '{{.Enabled}}' "$name" 2>/dev/null || true) == true && ${FORCE:-} != 1 ]]; then
  cat >&2 <<EOT
plugin: $name is installed and enabled: this is the plugin serving this node's secrets.
plugin: replacing it would remove it (docker plugin rm --force $name), losing its settings,
plugin: and create a new, disabled one: tasks would fail until it is set up and enabled again.
plugin: to upgrade, note its settings (docker plugin inspect -f '{{json .Settings}}' $name),
plugin: run docker plugin disable $name, then make plugin again (see docs/install.md#upgrading);
plugin: or run make plugin FORCE=1 to replace it while enabled.
EOT
  exit 1
fi

# One build at a time in this tree (make plugin may run concurrently).
mkdir -p "$(dirname "$out")"
if command -v flock >/dev/null; then
  exec 9>"$(dirname "$out")/.plugin.lock"
  flock 9
fi

rm -rf "$out"
mkdir -p "$out/rootfs/etc/ssl/certs" "$out/rootfs/run/docker/plugins" "$out/rootfs/tmp" \
  "$out/rootfs/etc/conjur-swarm/mapping" "$out/rootfs/etc/conjur-swarm/ca" "$out/rootfs/etc/conjur-swarm/identity"
CGO_ENABLED=0 GOARCH=${GOARCH:-$("$go" env GOARCH)} "$go" build -trimpath -ldflags "$ldflags" -o "$out/rootfs/conjur-swarm" ./cmd/conjur-swarm
cp "$ca" "$out/rootfs/etc/ssl/certs/ca-certificates.crt"
cp plugin/config.json "$out/config.json"
[[ ${NO_CREATE:-} == 1 ]] && exit 0

if docker plugin inspect "$name" >/dev/null 2>&1; then
  echo "plugin: removing the existing plugin $name (its settings are lost)"
  docker plugin rm --force "$name" >/dev/null
fi
docker plugin create "$name" "$out" >/dev/null
echo "plugin: created $name (disabled); next: docker plugin set $name CONJUR_APPLIANCE_URL=... ; docker plugin enable $name"
