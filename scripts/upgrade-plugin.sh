#!/usr/bin/env bash
# Upgrades an installed conjur-swarm plugin in place from a new plugin
# directory (config.json + rootfs/, as `make plugin` or a release tarball
# gives it), keeping every setting the operator made: env values, mount
# sources, device paths and args that differ from the defaults are read with `docker plugin inspect` before anything changes, then applied
# to the new plugin, which is enabled again if the old one was. Called by
# `make upgrade`.
#
#   scripts/upgrade-plugin.sh NAME:TAG PLUGIN_DIR
#
# It refuses, changing nothing, when: NAME:TAG is not installed; a setting
# the operator made has no settable counterpart in the new config.json (it
# would be lost); this node leads a swarm that has other managers (only the leader
# calls the plugin: move the leadership first, docs/install.md), unless
# ALLOW_LEADER=1; the plugin cannot be disabled (the engine's message says
# why). The settings travel in this process's memory only, never in a file:
# an env value may be a credential.
set -euo pipefail

name=${1:?usage: scripts/upgrade-plugin.sh NAME:TAG PLUGIN_DIR}
dir=${2:?usage: scripts/upgrade-plugin.sh NAME:TAG PLUGIN_DIR}
say() { echo "upgrade: $*"; }
refuse() { echo "upgrade: refused, nothing changed: $*" >&2; exit 1; }

command -v docker >/dev/null || refuse "the docker CLI is not installed"
[[ -f $dir/config.json && -d $dir/rootfs ]] || refuse "$dir is not a plugin directory (config.json and rootfs/); build one with make upgrade or plugin/build.sh"
old=$(docker plugin inspect "$name" 2>/dev/null) || refuse "no plugin named $name is installed (docker plugin ls); install it as docs/install.md says"

enabled=$(jq -r '.[0].Enabled' <<<"$old")

# The operator's settings, as NUL-separated docker plugin set arguments: the
# env values that are not the old manifest's defaults, the mount sources and
# device paths that are not the new manifest's (Docker 20.10 writes a set
# mount source into the installed manifest too, so the old defaults are
# gone), and args when they differ; values are carried byte for byte.
mapfile -d '' keep < <(jq -j --slurpfile new "$dir/config.json" '.[0] as $p | $new[0] as $n |
  ([$p.Config.Env[]? | {key: .Name, value: (.Value // "")}] | from_entries) as $edef |
  ([$n.mounts[]? | select(.name != null) | {key: .name, value: (.source // "")}] | from_entries) as $mdef |
  ([$n.linux.devices[]? | select(.name != null) | {key: .name, value: (.path // "")}] | from_entries) as $ddef |
  ( [$p.Settings.Env[]? | select((split("=")[0]) as $k | ($edef[$k] // null) != (.[($k | length) + 1:]))]
  + [$p.Settings.Mounts[]? | select(.Name != "" and .Source != $mdef[.Name]) | .Name + ".source=" + .Source]
  + [$p.Settings.Devices[]? | select(.Name != "" and .Path != $ddef[.Name]) | .Name + ".path=" + .Path]
  + (if ($p.Settings.Args // []) != ($p.Config.Args.Value // []) and (($p.Settings.Args // []) | length) > 0
     then ["args=" + ($p.Settings.Args | join(" "))] else [] end)
  )[] | . + "\u0000"' <<<"$old")
wait $! || refuse "could not read the settings of $name from docker plugin inspect"
keys=()
for kv in "${keep[@]}"; do keys+=("${kv%%=*}"); done

# Every kept setting must be settable in the new manifest.
mapfile -t settable < <(jq -r '
  [.env[]? | select(.settable | index("value")) | .name]
  + [.mounts[]? | select(.name != null and (.settable | index("source"))) | .name + ".source"]
  + [.linux.devices[]? | select(.name != null and (.settable | index("path"))) | .name + ".path"]
  + (if (.args.settable // []) | index("value") then ["args"] else [] end) | .[]' "$dir/config.json") ||
  refuse "$dir/config.json is not valid JSON"
declare -A can_set=()
for k in "${settable[@]}"; do can_set[$k]=1; done
missing=()
for k in "${keys[@]}"; do
  [[ -n ${can_set[$k]:-} ]] || missing+=("$k")
done
[[ ${#missing[@]} -eq 0 ]] || refuse "the new plugin has no settable ${missing[*]}: the setting(s) would be lost; read the release notes, then upgrade by hand (docs/install.md#upgrading)"

# Only the leader calls the plugin: upgrading it there fails tasks meanwhile.
if [[ $(docker info -f '{{.Swarm.ControlAvailable}}' 2>/dev/null) == true ]]; then
  leader=$(docker node inspect self -f '{{if .ManagerStatus}}{{.ManagerStatus.Leader}}{{end}}' 2>/dev/null || true)
  managers=$(docker info -f '{{.Swarm.Managers}}' 2>/dev/null || echo 1)
  if [[ $leader == true && $managers -gt 1 && ${ALLOW_LEADER:-} != 1 ]]; then
    refuse "this node leads the swarm: move the leadership first (on another manager: docker node demote $(docker info -f '{{.Swarm.NodeID}}')), or ALLOW_LEADER=1 to accept failed tasks meanwhile"
  fi
fi

say "$name: keeping ${#keys[@]} setting(s): ${keys[*]:-none}"
if [[ $enabled == true ]]; then
  say "disabling $name"
  docker plugin disable "$name" >/dev/null || refuse "docker plugin disable $name failed (above)"
fi

# From here the old plugin is gone: any failure says how to finish by hand.
finish() {
  echo "upgrade: failed after the old plugin was removed; finish by hand with the new plugin directory $dir:" >&2
  echo "upgrade:   docker plugin create $name $dir" >&2
  [[ ${#keys[@]} -eq 0 ]] || echo "upgrade:   docker plugin set $name $(printf '%s=... ' "${keys[@]}")" >&2
  echo "upgrade:   (the values as before: this script printed their names above, never the values)" >&2
  [[ $enabled != true ]] || echo "upgrade:   docker plugin enable $name" >&2
}
trap finish ERR
say "replacing $name with $dir"
docker plugin rm "$name" >/dev/null
docker plugin create "$name" "$dir" >/dev/null
[[ ${#keep[@]} -eq 0 ]] || docker plugin set "$name" "${keep[@]}"
if [[ $enabled == true ]]; then
  docker plugin enable "$name" >/dev/null
fi
trap - ERR
say "done: $name $( [[ $enabled == true ]] && echo enabled || echo 'created (disabled, as before)'), ${#keys[@]} setting(s) kept; check it with: conjur-swarm status --socket /run/docker/plugins/$(docker plugin inspect -f '{{.Id}}' "$name")/conjur.sock"
