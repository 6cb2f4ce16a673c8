#!/usr/bin/env bash
# Installs a model folder (model.json + model.onnx, docs/model-format.md) on the models volume, safe unattended:
#   update-model.sh [--no-restart] DIR|FILE.tar.gz
#       copy to releases/<sha256-prefix>, check model.onnx against model.json's sha256, build the TensorRT engine
#       with the current image, switch the `current` link atomically, restart, wait for /healthz, switch back if
#       it does not become healthy
#   update-model.sh --rollback
#       switch `current` back to the previous release
#   update-model.sh [--no-restart] --camera ID DIR|FILE.tar.gz   and   update-model.sh --camera ID --rollback
#       one camera's model (config.json: cameras[].model = "/models/cameras/ID/current"): same copy, sha256 check
#       and engine build, then the link cameras/ID/current is switched and the daemon reloaded (SIGHUP through
#       `systemctl reload`, no restart: the other cameras keep streaming and their models); done when /healthz lists
#       the camera on the new model's sha256, else the link is switched back (the daemon kept the old model)
# Exit: 0 installed, 1 nothing changed (bad input, engine build failed, camera not set up for its own model),
#       2 unhealthy / not adopted -> rolled back and healthy, 3 rolled back but still unhealthy; 4 the model folder
#       is invalid (sha256 mismatch, missing file).
set -euo pipefail
here="$(dirname "$(readlink -f "$0")")"
[ -r "$here/etstpm-edge-common.sh" ] || here="$here/bin"
# shellcheck source=bin/etstpm-edge-common.sh
. "$here/etstpm-edge-common.sh"

usage() { echo "usage: ${0##*/} [--no-restart] [--camera ID] MODEL_DIR|MODEL.tar.gz | [--camera ID] --rollback" >&2; exit 1; }
restart=1
camera=""
while [ $# -gt 1 ]; do
  case "$1" in
    --no-restart) restart=0; shift ;;
    --camera) [ $# -ge 2 ] || usage; camera="$2"; shift 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || usage

releases="$ETSTPM_MODELS_DIR/releases"
mkdir -p "$releases" "$ETSTPM_STATE_DIR"
exec 9>"$ETSTPM_STATE_DIR/update.lock"
flock -n 9 || die "another update is running ($ETSTPM_STATE_DIR/update.lock)"

# The station-wide model (models/current, model.dir) or one camera's (models/cameras/ID/current, cameras[].model).
# Links are relative to the models volume so they resolve the same on the host and in the container (/models).
if [ -n "$camera" ]; then
  [[ "$camera" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || die "--camera $camera: not a camera id"
  link_dir="$ETSTPM_MODELS_DIR/cameras/$camera" up="../../" state="model.$camera"
  ctr_dir="$CTR_MODELS/cameras/$camera/current"
  # The daemon only sees the new model if this camera's config names the link.
  python3 - "$ETSTPM_CONFIG_DIR/config.json" "$camera" "$ctr_dir" <<'PY' || die "nothing changed" 1
import json, sys
path, cam, want = sys.argv[1:]
try:
    cams = json.load(open(path)).get("cameras") or []
except Exception as e:
    sys.exit(f"{path}: {e}")
c = next((c for c in cams if isinstance(c, dict) and c.get("id") == cam), None)
if c is None:
    sys.exit(f"{path}: no camera {cam!r} in cameras[]")
if c.get("model") != want:
    sys.exit(f'{path}: camera {cam!r} has "model": {c.get("model")!r}; set it to "{want}" (then systemctl reload)')
PY
  mkdir -p "$link_dir"
else
  link_dir="$ETSTPM_MODELS_DIR" up="" state="model" ctr_dir="$CTR_MODELS/current"
fi
current_release() { local l; l="$(readlink "$link_dir/current" 2>/dev/null || true)"; printf '%s' "${l#"$up"}"; }
set_current() { # set_current releases/ID : atomic rename of a new symlink over the old one
  ln -sfn "$up$1" "$link_dir/.current.tmp"
  mv -T "$link_dir/.current.tmp" "$link_dir/current"
}
release_sha() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["onnx"]["sha256"].lower())' "$ETSTPM_MODELS_DIR/$1/model.json"; }
# One camera: SIGHUP, then wait until /healthz lists the camera on the model with sha256 $1.
reload_and_wait() {
  "$SYSTEMCTL" reload "$ETSTPM_SERVICE" || true
  local deadline=$((SECONDS + ETSTPM_HEALTH_TIMEOUT)) body=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    body="$("$CURL" -sS -m 5 "$ETSTPM_HEALTH_URL" 2>/dev/null || true)"
    if printf '%s' "$body" | python3 -c '
import json, sys
h = json.load(sys.stdin)
sys.exit(0 if any(m.get("sha256") == sys.argv[2] and sys.argv[1] in m.get("cameras", []) for m in h.get("models", [])) else 1)' "$camera" "$1" 2>/dev/null; then
      return 0
    fi
    sleep "$ETSTPM_HEALTH_INTERVAL"
  done
  why="$(printf '%s' "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("modelErrors", {}).get(sys.argv[1], ""))' "$camera" 2>/dev/null || true)"
  log "camera $camera is not on model ${1:0:16} after ${ETSTPM_HEALTH_TIMEOUT}s${why:+: $why}"
  return 1
}
restart_and_wait() {
  if [ -n "$camera" ]; then reload_and_wait "$(release_sha "$(current_release)")"; return; fi
  "$SYSTEMCTL" restart "$ETSTPM_SERVICE" || true; wait_healthy
}

if [ "$1" = "--rollback" ]; then
  prev="$(cat "$ETSTPM_STATE_DIR/$state.previous" 2>/dev/null || true)"
  if [ -z "$prev" ] || [ ! -d "$ETSTPM_MODELS_DIR/$prev" ]; then die "no previous model release recorded"; fi
  cur="$(current_release)"
  set_current "$prev"
  write_state "$state.previous" "$cur"
  log "model${camera:+ of camera $camera} rolled back: $cur -> $prev"
  [ "$restart" = 0 ] && exit 0
  restart_and_wait && exit 0
  die "rolled back to $prev but $ETSTPM_HEALTH_URL is not healthy" 3
fi

src="$1"
staging="$(mktemp -d "$releases/.incoming.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
if [ -d "$src" ]; then
  cp -a "$src/." "$staging/"
elif [ -f "$src" ]; then
  tar -xzf "$src" -C "$staging" || die "cannot extract $src (expected a .tar.gz of the model folder)"
  # Accept a tarball with the files at the top or inside one folder.
  if [ ! -e "$staging/model.json" ]; then
    inner=("$staging"/*/model.json)
    if [ ! -e "${inner[0]}" ] || [ ${#inner[@]} -ne 1 ]; then die "$src: no model.json at the top or in one folder" 4; fi
    top="$(dirname "${inner[0]}")"
    find "$top" -mindepth 1 -maxdepth 1 -exec mv -t "$staging" {} +
    rmdir "$top"
  fi
else
  die "$src: not a folder or file"
fi

# model.json -> onnx file name and recorded sha256 (python3 is part of every JetPack/Ubuntu install).
fields="$(python3 - "$staging/model.json" <<'PY'
import json, re, sys
path = sys.argv[1]
try:
    m = json.load(open(path))
except Exception as e:
    sys.exit(f"{path}: {e}")
problems = []
if m.get("format") != "etstpm-model/1":
    problems.append(f'format: expected "etstpm-model/1", got {m.get("format")!r}')
onnx = m.get("onnx") or {}
f, s = onnx.get("file"), onnx.get("sha256")
if not isinstance(f, str) or not f or "/" in f:
    problems.append(f"onnx.file: expected a file name, got {f!r}")
if not isinstance(s, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", s):
    problems.append(f"onnx.sha256: expected 64 hex characters, got {s!r}")
if problems:
    sys.exit(f"{path}: " + "; ".join(problems))
print(f, s.lower(), m.get("name", ""), m.get("version", ""))
PY
)" || die "invalid model folder $src (see above); nothing changed" 4
read -r onnx_file want_sha name version <<<"$fields"
[ -f "$staging/$onnx_file" ] || die "$src: $onnx_file named in model.json is missing; nothing changed" 4
have_sha="$(sha256sum "$staging/$onnx_file" | cut -d' ' -f1)"
[ "$have_sha" = "$want_sha" ] || die "$src: $onnx_file sha256 $have_sha does not match model.json $want_sha; nothing changed" 4

id="${want_sha:0:16}"
target="$releases/$id"
if [ -d "$target" ]; then
  log "release $id ($name $version) already on the volume"
else
  chmod -R a+rX "$staging"
  mv -T "$staging" "$target"
fi
trap - EXIT
rm -rf "$staging"

cur="$(current_release)"
if [ "$cur" = "releases/$id" ]; then
  log "$name $version ($id) is already the current model"
  exit 0
fi

image="$(current_image)"
if [ "${ETSTPM_ENGINE_BUILD:-1}" = 1 ] && [ -n "$image" ]; then
  log "building the TensorRT engine for $name $version with $image before switching"
  rc=0
  ENGINE_BUILD_RETRY_FAILED=1 engine_build "$image" "$target" "$ctr_dir" || rc=$?
  [ "$rc" -eq 0 ] || die "engine build for $name $version failed (exit $rc); nothing changed (current: ${cur:-<none>})"
fi

set_current "releases/$id"
write_state "$state.previous" "$cur"
log "current model${camera:+ of camera $camera}: ${cur:-<none>} -> releases/$id ($name $version)"
[ "$restart" = 1 ] || exit 0

if restart_and_wait; then
  # Keep every release a link points to (station, cameras), the previous ones (rollback targets) and the two
  # newest others; drop the rest.
  keep=("releases/$id" "$cur")
  for l in "$ETSTPM_MODELS_DIR/current" "$ETSTPM_MODELS_DIR"/cameras/*/current; do
    [ -L "$l" ] && keep+=("releases/$(basename "$(readlink "$l")")")
  done
  for f in "$ETSTPM_STATE_DIR"/model*.previous; do
    [ -f "$f" ] && keep+=("$(cat "$f")")
  done
  mapfile -t others < <(find "$releases" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %f\n' | sort -rn | cut -d' ' -f2)
  n=0
  for r in "${others[@]}"; do
    case " ${keep[*]} " in *" releases/$r "*) continue ;; esac
    n=$((n + 1))
    [ "$n" -le 2 ] || { rm -rf "${releases:?}/$r"; log "removed old release $r"; }
  done
  log "model update done: $name $version is healthy"
  exit 0
fi

log "$name $version did not become healthy${camera:+ on camera $camera} within ${ETSTPM_HEALTH_TIMEOUT}s: switching back to ${cur:-<none>}"
[ -n "$cur" ] || die "no previous model to switch back to" 3
set_current "$cur"
write_state "$state.previous" "releases/$id"
write_state "$state.failed" "releases/$id"
restart_and_wait && { log "switched back to $cur, healthy again"; exit 2; }
die "switched back to $cur but it is not healthy either" 3
