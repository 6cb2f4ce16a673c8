#!/usr/bin/env bash
# Field update of the etstpm-edge image, safe to run unattended:
#   update.sh TAG|REFERENCE   pull (e.g. 1.4.0 -> $ETSTPM_IMAGE_REPO:1.4.0, or repo:tag, or repo@sha256:...),
#                             build the TensorRT engine with the new image, switch, wait for /healthz,
#                             roll back to the previous image if it does not become healthy
#   update.sh --rollback      switch back to the previous image
# The model folder and the engine cache are volumes: an update or a rollback never touches them.
# Exit: 0 updated (or already current), 1 nothing changed (pull or engine build failed, bad usage),
#       2 new image unhealthy -> rolled back and healthy again, 3 rolled back but still unhealthy.
set -euo pipefail
here="$(dirname "$(readlink -f "$0")")"
[ -r "$here/etstpm-edge-common.sh" ] || here="$here/bin"   # run from the repository checkout
# shellcheck source=bin/etstpm-edge-common.sh
. "$here/etstpm-edge-common.sh"

usage() { echo "usage: ${0##*/} TAG|IMAGE-REFERENCE | --rollback" >&2; exit 1; }
[ $# -eq 1 ] || usage
mkdir -p "$ETSTPM_STATE_DIR"
exec 9>"$ETSTPM_STATE_DIR/update.lock"
flock -n 9 || die "another update is running ($ETSTPM_STATE_DIR/update.lock)"

switch_to() { # switch_to IMAGE_ID: record, restart, wait for health
  write_state image "$1"
  "$SYSTEMCTL" restart "$ETSTPM_SERVICE" || true
  wait_healthy
}

old="$(current_image)"
if [ "$1" = "--rollback" ]; then
  prev="$(previous_image)"
  [ -n "$prev" ] || die "no previous image recorded in $ETSTPM_STATE_DIR/image.previous"
  log "rolling back from ${old:-<none>} to $prev"
  write_state image.previous "$old"
  if switch_to "$prev"; then log "rolled back: $prev is healthy"; exit 0; fi
  die "rolled back to $prev but $ETSTPM_HEALTH_URL is still not healthy after ${ETSTPM_HEALTH_TIMEOUT}s" 3
fi

case "$1" in
  -*) usage ;;
  */*|*@*|*:*) ref="$1" ;;                       # full reference or digest
  *) [ -n "${ETSTPM_IMAGE_REPO:-}" ] || die "ETSTPM_IMAGE_REPO is not set (edge.env); give a full image reference"
     ref="$ETSTPM_IMAGE_REPO:$1" ;;
esac

log "pulling $ref"
"$DOCKER" pull "$ref" >&2 || die "pull of $ref failed; nothing changed (still running ${old:-<none>})"
new="$("$DOCKER" image inspect --format '{{.Id}}' "$ref")" || die "cannot inspect $ref after pulling it"
if [ "$new" = "$old" ]; then
  log "$ref is $new, already the current image"
  exit 0
fi

if [ "${ETSTPM_ENGINE_BUILD:-1}" = 1 ] && [ -e "$ETSTPM_MODELS_DIR/current/model.json" ]; then
  log "building the TensorRT engine with $new before switching (minutes on first build)"
  rc=0
  ENGINE_BUILD_RETRY_FAILED=1 engine_build "$new" || rc=$?
  [ "$rc" -eq 0 ] || die "engine build with $ref failed (exit $rc); nothing changed (still running ${old:-<none>})"
fi

log "switching ${old:-<none>} -> $new ($ref)"
old_prev="$(previous_image)"
write_state image.previous "$old"
if switch_to "$new"; then
  log "update done: $ref ($new) is healthy"
  # Keep the current and the previous image (rollback target); the one before them only costs disk.
  if [ -n "$old_prev" ] && [ "$old_prev" != "$new" ] && [ "$old_prev" != "$old" ]; then
    if "$DOCKER" image rm "$old_prev" >/dev/null 2>&1; then log "removed old image $old_prev"; fi
  fi
  exit 0
fi

log "$new did not become healthy within ${ETSTPM_HEALTH_TIMEOUT}s: rolling back to ${old:-<none>}"
write_state image.failed "$new"
[ -n "$old" ] || die "no previous image to roll back to" 3
write_state image.previous "$new"
if switch_to "$old"; then
  log "rolled back to $old, healthy again; the failed image $new is recorded in $ETSTPM_STATE_DIR/image.failed"
  exit 2
fi
die "rolled back to $old but it is not healthy either (camera, broker or host problem?)" 3
