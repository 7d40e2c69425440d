#!/usr/bin/env bash
# Builds the release artifacts for every architecture under OUTDIR (make
# release), without docker:
#   conjur-swarm-plugin-VERSION-ARCH.tar.gz  the managed plugin directory
#       (config.json + rootfs/): tar -xzf it, then
#       docker plugin create NAME:TAG-ARCH conjur-swarm-plugin-VERSION-ARCH
#   conjur-swarm-agent-VERSION-ARCH.tar      the bootstrap-agent image in
#       `docker load` format, tagged conjur-swarm-agent:VERSION-ARCH, its
#       config naming ARCH (docker import cannot set it on Engine 20.10)
#   conjur-swarm-VERSION-ARCH.spdx.json      the SPDX 2.3 SBOM of that
#       binary, from the module graph it carries (conjur-swarm sbom), dated
#       with the commit's time so that the same commit gives the same file
#   SHA256SUMS                               sha256sum of each artifact
#   SHA256SUMS.sig                           an SSH signature of SHA256SUMS
#       (ssh-keygen -Y sign, namespace conjur-swarm-release) made with the
#       private key file RELEASE_SIGNING_KEY; without it, with a throwaway
#       key whose public half is written as throwaway-signing-key.pub (the
#       signature then proves the procedure, not who made the release)
#   allowed_signers                          the signing key's public half as
#       ssh-keygen -Y verify reads it (verify against the project's published
#       key, not this copy: docs/install.md#verifying-a-release)
# Every binary is checked to be built for its ARCH (go version -m) before
# it is packed, and the signature is verified before the script ends.
#
#   [RELEASE_SIGNING_KEY=FILE] plugin/release.sh OUTDIR VERSION GO LDFLAGS ARCH...
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
# A binary for this machine writes the SBOMs (it reads any architecture's).
CGO_ENABLED=0 "$go" build -trimpath -o "$out/work/sbom-tool" ./cmd/conjur-swarm
created=$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
created=$(date -u -d "$created" +%Y-%m-%dT%H:%M:%SZ)
for arch in "${archs[@]}"; do
  # The plugin directory, exactly as make plugin builds it.
  pdir="$out/work/conjur-swarm-plugin-$version-$arch"
  GOARCH=$arch NO_CREATE=1 plugin/build.sh "release:$version-$arch" "$pdir" "$go" "$ldflags"
  check_arch "$pdir/rootfs/conjur-swarm" "$arch"
  "$out/work/sbom-tool" sbom --name conjur-swarm --created "$created" "$pdir/rootfs/conjur-swarm" \
    >"$out/conjur-swarm-$version-$arch.spdx.json"
  tar -C "$out/work" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -cf - "conjur-swarm-plugin-$version-$arch" | gzip -n >"$out/conjur-swarm-plugin-$version-$arch.tar.gz"

  # The agent image: one layer holding the binary (as plugin/image.sh).
  img="$out/work/agent-$arch"
  mkdir -p "$img/rootfs/tmp" "$img/rootfs/run/secrets" "$img/rootfs/run/docker/plugins"
  cp "$pdir/rootfs/conjur-swarm" "$img/rootfs/conjur-swarm"
  write_image_tar "$img/rootfs" "$arch" "conjur-swarm-agent:$version-$arch" '["/conjur-swarm","bootstrap-agent"]' \
    "conjur-swarm bootstrap agent" "$version" "$out/conjur-swarm-agent-$version-$arch.tar" >/dev/null
done
(cd "$out" && sha256sum -- conjur-swarm-* >SHA256SUMS)

# Sign SHA256SUMS: it names every artifact by digest, so one signature covers all.
key=${RELEASE_SIGNING_KEY:-}
if [[ -z $key ]]; then
  key="$out/work/throwaway-signing-key"
  ssh-keygen -q -t ed25519 -N '' -C "conjur-swarm throwaway release key" -f "$key"
  cp "$key.pub" "$out/throwaway-signing-key.pub"
  echo "release: RELEASE_SIGNING_KEY is not set: SHA256SUMS is signed with a throwaway key (throwaway-signing-key.pub)"
fi
[[ -r $key ]] || { echo "release: RELEASE_SIGNING_KEY=$key is not a readable private key file" >&2; exit 1; }
pub=$(ssh-keygen -y -f "$key") || { echo "release: cannot read the public half of $key (a passphrase-protected key needs ssh-agent: see ssh-keygen -Y sign)" >&2; exit 1; }
printf 'release@conjur-swarm namespaces="conjur-swarm-release" %s\n' "$pub" >"$out/allowed_signers"
ssh-keygen -q -Y sign -f "$key" -n conjur-swarm-release "$out/SHA256SUMS"
(cd "$out" && ssh-keygen -q -Y verify -f allowed_signers -I release@conjur-swarm -n conjur-swarm-release \
  -s SHA256SUMS.sig <SHA256SUMS >/dev/null) || { echo "release: the signature of SHA256SUMS does not verify" >&2; exit 1; }
(cd "$out" && sha256sum --quiet -c SHA256SUMS) || { echo "release: SHA256SUMS does not match the artifacts" >&2; exit 1; }
rm -rf "$out/work"
echo "release: artifacts in $out (SHA256SUMS signed: SHA256SUMS.sig, key $(ssh-keygen -l -f - <<<"$pub" | cut -d' ' -f2)):"
sed 's/^/  /' "$out/SHA256SUMS"
