# shellcheck shell=bash
# Shared by the etstpm-edge host scripts: settings, docker arguments, image state, health wait.
# Every external command goes through a variable (DOCKER, SYSTEMCTL, CURL) so tests can substitute shims.

ETSTPM_ENV_FILE="${ETSTPM_ENV_FILE:-/etc/etstpm-edge/edge.env}"
if [ -r "$ETSTPM_ENV_FILE" ]; then
  # shellcheck source=../edge.env.example
  . "$ETSTPM_ENV_FILE"
fi
DOCKER="${DOCKER:-docker}"
SYSTEMCTL="${SYSTEMCTL:-systemctl}"
CURL="${CURL:-curl}"
ETSTPM_CONTAINER="${ETSTPM_CONTAINER:-etstpm-edge}"
ETSTPM_SERVICE="${ETSTPM_SERVICE:-etstpm-edge.service}"
ETSTPM_STATE_DIR="${ETSTPM_STATE_DIR:-/var/lib/etstpm-edge}"
ETSTPM_MODELS_DIR="${ETSTPM_MODELS_DIR:-$ETSTPM_STATE_DIR/models}"
ETSTPM_TRT_CACHE_DIR="${ETSTPM_TRT_CACHE_DIR:-/var/cache/etstpm-edge/trt}"
# Mounted read-only at /etc/etstpm: config.json (the daemon's configuration), TLS files it names, and
# secrets.env (mode 0600, e.g. ETSTPM_MQTT_PASSWORD=...), which docker reads as root and passes as environment.
ETSTPM_CONFIG_DIR="${ETSTPM_CONFIG_DIR:-/etc/etstpm-edge}"
ETSTPM_HEALTH_URL="${ETSTPM_HEALTH_URL:-http://127.0.0.1:9464/healthz}"
ETSTPM_HEALTH_TIMEOUT="${ETSTPM_HEALTH_TIMEOUT:-180}"
ETSTPM_HEALTH_INTERVAL="${ETSTPM_HEALTH_INTERVAL:-3}"
ETSTPM_UID="${ETSTPM_UID:-10001}"
ETSTPM_DOCKER_EXTRA_ARGS="${ETSTPM_DOCKER_EXTRA_ARGS:-}"
# Paths inside the container (fixed by Dockerfile.l4t and config.example.json); used by the sourcing scripts.
# shellcheck disable=SC2034
CTR_MODELS=/models CTR_TRT_CACHE=/var/cache/etstpm/trt CTR_CONFIG_DIR=/etc/etstpm CTR_CONFIG=/etc/etstpm/config.json \
  CTR_NOTIFY_DIR=/run/etstpm-notify

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit "${2:-1}"; }

# Image the service runs: an immutable image ID (sha256:...) written by install.sh / update.sh.
current_image() { cat "$ETSTPM_STATE_DIR/image" 2>/dev/null || true; }
previous_image() { cat "$ETSTPM_STATE_DIR/image.previous" 2>/dev/null || true; }
write_state() { # write_state FILE VALUE (atomic)
  mkdir -p "$ETSTPM_STATE_DIR"
  printf '%s\n' "$2" >"$ETSTPM_STATE_DIR/.$1.tmp"
  mv -f "$ETSTPM_STATE_DIR/.$1.tmp" "$ETSTPM_STATE_DIR/$1"
}

# Arguments every container of this image gets: GPU runtime, host network (MQTT, RTSP, /healthz on localhost),
# the volumes (models read-only, engine cache read-write, config read-only).
common_run_args() {
  local -n out=$1
  out=(--runtime nvidia --network host --init
       -v "$ETSTPM_MODELS_DIR:$CTR_MODELS:ro"
       -v "$ETSTPM_TRT_CACHE_DIR:$CTR_TRT_CACHE"
       -v "$ETSTPM_CONFIG_DIR:$CTR_CONFIG_DIR:ro")
  if [ -r "$ETSTPM_CONFIG_DIR/secrets.env" ]; then
    out+=(--env-file "$ETSTPM_CONFIG_DIR/secrets.env")
  fi
  if [ -n "$ETSTPM_DOCKER_EXTRA_ARGS" ]; then
    local extra
    read -r -a extra <<<"$ETSTPM_DOCKER_EXTRA_ARGS"
    out+=("${extra[@]}")
  fi
}

# Engine build with IMAGE for the model folder at host path MODEL_HOST_DIR (default: the current release), mounted
# where the daemon sees it (CTR_DIR, default /models/current; a camera's own: /models/cameras/ID/current) so
# onnxruntime sees the same path.
# ENGINE_BUILD_RETRY_FAILED=1 retries a key whose last build failed (the update scripts: a deliberate retry);
# the boot-time unit leaves it unset so a failing build does not delay every restart.
# Exit status is the CLI's: 0 ready, 3 model invalid, 4 TensorRT unavailable, 5 build failed.
engine_build() {
  local image=$1 model_host_dir=${2:-} ctr_dir=${3:-$CTR_MODELS/current} args=() cli_extra=()
  if [ "${ENGINE_BUILD_RETRY_FAILED:-0}" = 1 ]; then cli_extra+=(--retry-failed); fi
  common_run_args args
  if [ -n "$model_host_dir" ]; then
    args+=(-v "$model_host_dir:$ctr_dir:ro")
  fi
  "$DOCKER" run --rm --name "$ETSTPM_CONTAINER-engine-build" "${args[@]}" --entrypoint node "$image" \
    dist/src/tensorrt/engine-build.js --config "$CTR_CONFIG" --model-dir "$ctr_dir" \
    --cache-dir "$CTR_TRT_CACHE" --prune 2 "${cli_extra[@]}"
}

# Waits until /healthz answers 200 and the unit is active; fails after ETSTPM_HEALTH_TIMEOUT seconds.
wait_healthy() {
  local deadline=$((SECONDS + ETSTPM_HEALTH_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if "$SYSTEMCTL" is-active --quiet "$ETSTPM_SERVICE" && "$CURL" -fsS -m 5 -o /dev/null "$ETSTPM_HEALTH_URL"; then
      return 0
    fi
    sleep "$ETSTPM_HEALTH_INTERVAL"
  done
  return 1
}
