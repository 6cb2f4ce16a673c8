#!/usr/bin/env bash
# Installs etstpm-edge on a Jetson (JetPack 6 with Docker and the NVIDIA container runtime), as root:
#   install.sh [--model DIR|FILE.tar.gz] [--no-start] IMAGE-REFERENCE
# Copies the host scripts and systemd units, creates the volumes (models, TensorRT engine cache, state),
# records the image, installs the model, enables the units and starts them (engine build first).
# DESTDIR (tests, packaging) prefixes every installed path; DOCKER/SYSTEMCTL/CURL select the commands.
set -euo pipefail
src="$(dirname "$(readlink -f "$0")")"
DESTDIR="${DESTDIR:-}"
libdir="$DESTDIR/usr/local/lib/etstpm-edge"
unitdir="$DESTDIR/etc/systemd/system"
etcdir="$DESTDIR/etc/etstpm-edge"
export ETSTPM_ENV_FILE="${ETSTPM_ENV_FILE:-$etcdir/edge.env}"

usage() { echo "usage: ${0##*/} [--model DIR|FILE.tar.gz] [--no-start] IMAGE-REFERENCE" >&2; exit 1; }
model="" start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --model) [ $# -ge 2 ] || usage; model="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    -*) usage ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || usage
ref="$1"
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then echo "${0##*/}: run as root" >&2; exit 1; fi

install -d -m 0755 "$libdir" "$unitdir" "$etcdir"
install -m 0755 "$src"/bin/etstpm-notify-relay "$src"/bin/etstpm-edge-run "$src"/bin/etstpm-edge-cleanup \
  "$src"/bin/etstpm-edge-engine-build "$libdir/"
install -m 0644 "$src"/bin/etstpm-edge-common.sh "$libdir/"
install -m 0755 "$src"/update.sh "$src"/update-model.sh "$src"/device-check.sh "$libdir/"
install -m 0644 "$src"/etstpm-edge.service "$src"/etstpm-edge-engine.service "$unitdir/"
# Site settings are never overwritten by a reinstall.
[ -e "$etcdir/edge.env" ] || install -m 0644 "$src"/edge.env.example "$etcdir/edge.env"
[ -e "$etcdir/config.json" ] || install -m 0644 "$src"/config.example.json "$etcdir/config.json"

# shellcheck source=bin/etstpm-edge-common.sh
. "$libdir/etstpm-edge-common.sh"
install -d -m 0755 "$ETSTPM_STATE_DIR" "$ETSTPM_MODELS_DIR" "$ETSTPM_MODELS_DIR/releases"
install -d -m 0755 "$ETSTPM_TRT_CACHE_DIR"
# The container runs as ETSTPM_UID and writes engines to the cache volume.
chown "$ETSTPM_UID:$ETSTPM_UID" "$ETSTPM_TRT_CACHE_DIR" 2>/dev/null || log "warning: cannot chown $ETSTPM_TRT_CACHE_DIR to $ETSTPM_UID"

if ! "$DOCKER" info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"nvidia"'; then
  log "warning: docker has no 'nvidia' runtime (install nvidia-container-toolkit / JetPack's nvidia-container); the container will fail to start"
fi
if ! "$DOCKER" image inspect "$ref" >/dev/null 2>&1; then
  log "pulling $ref"
  "$DOCKER" pull "$ref" >&2 || die "pull of $ref failed"
fi
image_id="$("$DOCKER" image inspect --format '{{.Id}}' "$ref")"
write_state image "$image_id"
log "image: $ref ($image_id)"

if [ -n "$model" ]; then
  # The engine is built by etstpm-edge-engine.service on start, so not here.
  ETSTPM_ENGINE_BUILD=0 "$libdir/update-model.sh" --no-restart "$model"
fi

"$SYSTEMCTL" daemon-reload
"$SYSTEMCTL" enable etstpm-edge-engine.service "$ETSTPM_SERVICE"
if [ "$start" = 1 ]; then
  log "building the TensorRT engine (first boot: minutes)"
  "$SYSTEMCTL" start etstpm-edge-engine.service || log "warning: engine build failed; the daemon starts without TensorRT (journalctl -u etstpm-edge-engine)"
  "$SYSTEMCTL" start "$ETSTPM_SERVICE"
  if wait_healthy; then log "etstpm-edge is running and healthy"; else
    log "warning: $ETSTPM_HEALTH_URL not healthy after ${ETSTPM_HEALTH_TIMEOUT}s (cameras and broker in $etcdir/config.json?)"
  fi
fi
