# shellcheck shell=bash
# Minimal test harness for the deploy scripts: a fresh temporary installation per test, the shims in
# test/shims standing in for docker/systemctl/curl, and assertions that count failures.
JETSON_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHIMS="$JETSON_DIR/test/shims"
FAILURES=0
TESTS=0

setup() { # fresh state; sets T (temp root) and exports what the scripts and shims read
  T="$(mktemp -d)"
  export FAKE_LOG="$T/calls.log" FAKE_STATE="$T/fake"
  mkdir -p "$FAKE_STATE"
  : >"$FAKE_LOG"
  export DOCKER="$SHIMS/docker" SYSTEMCTL="$SHIMS/systemctl" CURL="$SHIMS/curl"
  export ETSTPM_STATE_DIR="$T/state" ETSTPM_MODELS_DIR="$T/state/models" ETSTPM_TRT_CACHE_DIR="$T/cache"
  export ETSTPM_CONFIG_DIR="$T/etc" ETSTPM_ENV_FILE="$T/edge.env"
  export ETSTPM_IMAGE_REPO=registry.test/etstpm-edge ETSTPM_HEALTH_TIMEOUT=2 ETSTPM_HEALTH_INTERVAL=0.2
  unset FAKE_BAD_IMAGE FAKE_BAD_MODEL FAKE_ENGINE_RC FAKE_PULL_FAIL ETSTPM_ENGINE_BUILD
  mkdir -p "$ETSTPM_STATE_DIR" "$ETSTPM_MODELS_DIR/releases" "$ETSTPM_CONFIG_DIR"
  : >"$ETSTPM_ENV_FILE"
}
teardown() { rm -rf "$T"; }

image_id() { printf 'sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -c1-64)"; }
pretend_pulled() { printf '%s\n' "$1" >>"$FAKE_STATE/pulled"; }

# make_model DIR VERSION [BAD_SHA]: a model folder per docs/model-format.md with random ONNX bytes.
make_model() {
  mkdir -p "$1"
  head -c 4096 /dev/urandom >"$1/model.onnx"
  local sha
  sha="$(sha256sum "$1/model.onnx" | cut -d' ' -f1)"
  [ -z "${3:-}" ] || sha="$3"
  cat >"$1/model.json" <<JSON
{"format": "etstpm-model/1", "name": "test-model", "version": "$2",
 "input": {"name": "frames", "layout": "NHWC", "dtype": "uint8", "color": "RGB", "height": 256, "width": 256},
 "outputs": {"anomaly_map": "anomaly_map", "score": "score"},
 "onnx": {"file": "model.onnx", "sha256": "$sha", "opset": 17}}
JSON
}
model_id() { sha256sum "$1/model.onnx" | cut -c1-16; }

pass() { TESTS=$((TESTS + 1)); printf 'ok %d - %s\n' "$TESTS" "$1"; }
fail() { TESTS=$((TESTS + 1)); FAILURES=$((FAILURES + 1)); printf 'not ok %d - %s\n' "$TESTS" "$1"; }
check() { # check "description" command...
  local d=$1; shift
  if "$@"; then pass "$d"; else fail "$d"; fi
}
eq() { [ "$1" = "$2" ] || { printf '#   expected [%s]\n#   actual   [%s]\n' "$2" "$1"; return 1; }; }
contains() { grep -qF -- "$2" "$1" || { printf '#   %s does not contain [%s]\n' "$1" "$2"; return 1; }; }
lacks() { ! grep -qF -- "$2" "$1" || { printf '#   %s unexpectedly contains [%s]\n' "$1" "$2"; return 1; }; }
# Line number of the first line of FILE containing TEXT (order assertions).
line_of() { grep -nF -- "$2" "$1" | head -1 | cut -d: -f1; }
before() {
  local a b
  a="$(line_of "$1" "$2")"
  b="$(line_of "$1" "$3")"
  if [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]; then return 0; fi
  printf '#   [%s] not before [%s] in %s\n' "$2" "$3" "$1"
  return 1
}

finish() {
  printf '# %d tests, %d failed\n' "$TESTS" "$FAILURES"
  [ "$FAILURES" -eq 0 ]
}
