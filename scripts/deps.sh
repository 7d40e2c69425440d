#!/usr/bin/env bash
# Installs the host tools `make test` drives, when one is missing, from
# Debian's packages (as root, with apt-get), so that the README's two
# commands set up a fresh machine. Elsewhere it names what to install and
# fails. Called by `make deps`, a prerequisite of `make test`.
#
#   busybox   the docs' shell image (plugin/shell-image.sh)
#   dash bash the dotenv bundles' round trip (FuzzRenderRoundTrip)
#   jq        scripts/upgrade-plugin.sh and the docs' scripts
#   ip        network namespaces (the cloud-login and lab tests)
#   unshare nsenter flock   the swarm lab's nodes and locks
set -euo pipefail

declare -A package=([busybox]=busybox [dash]=dash [bash]=bash [jq]=jq [ip]=iproute2
  [unshare]=util-linux [nsenter]=util-linux [flock]=util-linux)
missing=()
for cmd in "${!package[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${package[$cmd]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "deps: missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]}), then run make test again" >&2
  exit 1
fi
echo "deps: installing ${missing[*]} from Debian's packages"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for cmd in "${!package[@]}"; do
  command -v "$cmd" >/dev/null || { echo "deps: $cmd is still missing after installing ${package[$cmd]}" >&2; exit 1; }
done
