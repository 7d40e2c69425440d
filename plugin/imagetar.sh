# Sourced by plugin/release.sh, plugin/image.sh and plugin/shell-image.sh:
# write_image_tar writes an image in `docker load` format from a root
# filesystem directory, reproducibly: the layer is a sorted tar owned by
# root and dated 0, the config is dated 0, so the same rootfs gives the same
# image id (the config's sha256) on every build and every machine, and
# loading it again replaces nothing and leaves no untagged copy behind.
#
#   write_image_tar ROOTFS ARCH REPO:TAG ENTRYPOINT_JSON COMMENT VERSION OUT.tar
#
# It prints the image id (sha256:...). Needs GNU tar and sha256sum.

# A reproducible tar of DIR's contents: sorted, owned by root, dated 0.
rtar() { tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -c .; }

write_image_tar() {
  local rootfs=$1 arch=$2 tag=$3 entrypoint=$4 comment=$5 version=$6 out=$7
  local work layer cfg
  work=$(mktemp -d)
  rtar "$rootfs" >"$work/layer.tar"
  layer=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  mkdir -p "$work/image/$layer"
  mv "$work/layer.tar" "$work/image/$layer/layer.tar"
  printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":%s,"Labels":{"org.opencontainers.image.version":"%s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","comment":"%s"}]}' \
    "$arch" "$entrypoint" "$version" "$layer" "$comment" >"$work/config.json"
  cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  mv "$work/config.json" "$work/image/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$tag" "$layer" >"$work/image/manifest.json"
  rtar "$work/image" >"$out"
  rm -rf "$work"
  echo "sha256:$cfg"
}
