#!/usr/bin/env bash
# update-model.sh against the shims: sha256 check, engine build before the switch, atomic `current` link,
# rollback on an unhealthy start, pruning of old releases.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
UPDATE_MODEL="$JETSON_DIR/update-model.sh"

start_with_model() { # an image running model m1
  IMG="$(image_id registry.test/etstpm-edge:1.0)"
  printf '%s\n' "$IMG" >"$ETSTPM_STATE_DIR/image"
  make_model "$T/m1" v1
  M1="$(model_id "$T/m1")"
  mkdir -p "$ETSTPM_MODELS_DIR/releases"
  cp -a "$T/m1" "$ETSTPM_MODELS_DIR/releases/$M1"
  ln -s "releases/$M1" "$ETSTPM_MODELS_DIR/current"
}
no_staging_left() { [ -z "$(find "$ETSTPM_MODELS_DIR/releases" -maxdepth 1 -name '.incoming*')" ]; }

# 1. A valid folder: copied, engine built for it (mounted where the daemon sees its model), switched, healthy.
setup; start_with_model
make_model "$T/m2" v2; M2="$(model_id "$T/m2")"
"$UPDATE_MODEL" "$T/m2" >"$T/out" 2>&1; rc=$?
check "model: exit 0" eq "$rc" 0
check "model: current -> new release" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/$M2"
check "model: files copied intact" cmp -s "$T/m2/model.onnx" "$ETSTPM_MODELS_DIR/releases/$M2/model.onnx"
check "model: previous recorded" eq "$(cat "$ETSTPM_STATE_DIR/model.previous")" "releases/$M1"
check "model: engine built with the new folder at /models/current before the restart" before "$FAKE_LOG" \
  "-v $ETSTPM_MODELS_DIR/releases/$M2:/models/current:ro --entrypoint node $IMG" "systemctl restart etstpm-edge.service image=$IMG model=releases/$M2"
check "model: no staging folder left" no_staging_left
check "model: retries a previously failed engine build for this model" contains "$FAKE_LOG" "--retry-failed"
teardown

# 2. sha256 mismatch: refused with exit 4, nothing changed, nothing left behind.
setup; start_with_model
make_model "$T/bad" v3 "$(printf '0%.0s' $(seq 64))"
"$UPDATE_MODEL" "$T/bad" >"$T/out" 2>&1; rc=$?
check "sha mismatch: exit 4" eq "$rc" 4
check "sha mismatch: message names file and both hashes" contains "$T/out" "model.onnx sha256 "
check "sha mismatch: current unchanged" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/$M1"
check "sha mismatch: no restart, no engine build" lacks "$FAKE_LOG" "docker run"
check "sha mismatch: no staging folder left" no_staging_left
teardown

# 3. Missing onnx file and a broken manifest: exit 4 with the reason.
setup; start_with_model
make_model "$T/noonnx" v4; rm "$T/noonnx/model.onnx"
"$UPDATE_MODEL" "$T/noonnx" >"$T/out" 2>&1; rc=$?
check "missing onnx: exit 4" eq "$rc" 4
check "missing onnx: message" contains "$T/out" "model.onnx named in model.json is missing"
mkdir -p "$T/badjson"; echo '{"format": "other"}' >"$T/badjson/model.json"
"$UPDATE_MODEL" "$T/badjson" >"$T/out" 2>&1; rc=$?
check "bad manifest: exit 4" eq "$rc" 4
check "bad manifest: names the key" contains "$T/out" 'format: expected "etstpm-model/1"'
teardown

# 4. The new model starts unhealthy: switched back, exit 2, failed release recorded, engine cache untouched.
setup; start_with_model
make_model "$T/m5" v5; M5="$(model_id "$T/m5")"
export FAKE_BAD_MODEL="$M5"
"$UPDATE_MODEL" "$T/m5" >"$T/out" 2>&1; rc=$?
check "model rollback: exit 2" eq "$rc" 2
check "model rollback: current back to the old release" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/$M1"
check "model rollback: failed release recorded" eq "$(cat "$ETSTPM_STATE_DIR/model.failed")" "releases/$M5"
check "model rollback: restarted on the new, then on the old model" before "$FAKE_LOG" "model=releases/$M5" "systemctl restart etstpm-edge.service image=$IMG model=releases/$M1"
teardown

# 5. Engine build fails for the new model: nothing switched, no restart.
setup; start_with_model
make_model "$T/m6" v6
export FAKE_ENGINE_RC=5
"$UPDATE_MODEL" "$T/m6" >"$T/out" 2>&1; rc=$?
check "model engine failure: exit 1" eq "$rc" 1
check "model engine failure: current unchanged" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/$M1"
check "model engine failure: no restart" lacks "$FAKE_LOG" "systemctl restart"
teardown

# 6. A tarball with the files inside one folder; then --rollback.
setup; start_with_model
make_model "$T/pkg/magnetic_tile-v7" v7; M7="$(model_id "$T/pkg/magnetic_tile-v7")"
tar -czf "$T/m7.tar.gz" -C "$T/pkg" magnetic_tile-v7
"$UPDATE_MODEL" "$T/m7.tar.gz" >"$T/out" 2>&1; rc=$?
check "tarball: exit 0" eq "$rc" 0
check "tarball: current -> new release" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/$M7"
check "tarball: files at the release top" test -f "$ETSTPM_MODELS_DIR/releases/$M7/model.json"
"$UPDATE_MODEL" --rollback >"$T/out" 2>&1; rc=$?
check "model --rollback: exit 0" eq "$rc" 0
check "model --rollback: current back to the old release" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/$M1"
teardown

# 7. Pruning: after several updates only current, previous and the two newest others remain.
setup; start_with_model
ids=()
for v in 8 9 10 11 12; do
  make_model "$T/m$v" "v$v"; ids+=("$(model_id "$T/m$v")")
  "$UPDATE_MODEL" "$T/m$v" >"$T/out" 2>&1 || fail "prune setup v$v"
  sleep 0.05
done
remaining="$(find "$ETSTPM_MODELS_DIR/releases" -mindepth 1 -maxdepth 1 -type d | wc -l)"
check "prune: four releases remain" eq "$remaining" 4
check "prune: current kept" test -d "$ETSTPM_MODELS_DIR/releases/${ids[4]}"
check "prune: previous kept" test -d "$ETSTPM_MODELS_DIR/releases/${ids[3]}"
check "prune: oldest removed" test ! -d "$ETSTPM_MODELS_DIR/releases/$M1"
teardown

# 8. One camera's model (--camera): its own link, engine built at its path, SIGHUP (reload) not restart, done when
#    /healthz lists the camera on the new sha256; the station link and other cameras untouched.
camera_config() { # camera_config ID...: config.json whose cameras name their own link
  local cams=() c
  for c in "$@"; do cams+=("{\"id\": \"$c\", \"url\": \"rtsp://cam/$c\", \"model\": \"/models/cameras/$c/current\"}"); done
  local IFS=,
  printf '{"cameras": [%s]}\n' "${cams[*]}" >"$ETSTPM_CONFIG_DIR/config.json"
}
setup; start_with_model; camera_config top side
make_model "$T/t1" t1; T1="$(model_id "$T/t1")"
make_model "$T/s1" s1; S1="$(model_id "$T/s1")"
"$UPDATE_MODEL" --camera top "$T/t1" >"$T/out" 2>&1; rc=$?
check "camera: exit 0" eq "$rc" 0
check "camera: its link -> new release (relative to the volume)" eq "$(readlink "$ETSTPM_MODELS_DIR/cameras/top/current")" "../../releases/$T1"
check "camera: station link untouched" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/$M1"
check "camera: engine built at the camera's path" contains "$FAKE_LOG" "-v $ETSTPM_MODELS_DIR/releases/$T1:/models/cameras/top/current:ro"
check "camera: engine build names that path" contains "$FAKE_LOG" "--model-dir /models/cameras/top/current"
check "camera: reload, no restart" contains "$FAKE_LOG" "systemctl reload etstpm-edge.service"
check "camera: no restart" lacks "$FAKE_LOG" "systemctl restart"
"$UPDATE_MODEL" --camera side "$T/s1" >"$T/out" 2>&1; rc=$?
check "second camera: exit 0" eq "$rc" 0
check "second camera: first camera keeps its model" eq "$(readlink "$ETSTPM_MODELS_DIR/cameras/top/current")" "../../releases/$T1"
# A new model the daemon does not adopt (it keeps t1 and reports why): link switched back, exit 2, failure recorded.
make_model "$T/t2" t2; T2="$(model_id "$T/t2")"
FAKE_KEPT_SHA="$(sha256sum "$T/t1/model.onnx" | cut -d' ' -f1)"
export FAKE_BAD_MODEL="$T2" FAKE_KEPT_SHA
"$UPDATE_MODEL" --camera top "$T/t2" >"$T/out" 2>&1; rc=$?
unset FAKE_BAD_MODEL FAKE_KEPT_SHA
check "camera not adopted: exit 2" eq "$rc" 2
check "camera not adopted: link back on the old release" eq "$(readlink "$ETSTPM_MODELS_DIR/cameras/top/current")" "../../releases/$T1"
check "camera not adopted: failure recorded" eq "$(cat "$ETSTPM_STATE_DIR/model.top.failed")" "releases/$T2"
check "camera not adopted: the daemon's reason shown" contains "$T/out" "camera top: model folder /models/cameras/top/current: sha256 mismatch"
check "camera not adopted: other camera untouched" eq "$(readlink "$ETSTPM_MODELS_DIR/cameras/side/current")" "../../releases/$S1"
# sha256 mismatch in the folder: refused before anything changes.
make_model "$T/t3" t3 "$(printf '0%.0s' $(seq 64))"
"$UPDATE_MODEL" --camera top "$T/t3" >"$T/out" 2>&1; rc=$?
check "camera sha mismatch: exit 4" eq "$rc" 4
check "camera sha mismatch: link unchanged" eq "$(readlink "$ETSTPM_MODELS_DIR/cameras/top/current")" "../../releases/$T1"
# A camera whose config does not name its link: refused, nothing changed.
"$UPDATE_MODEL" --camera gate "$T/t1" >"$T/out" 2>&1; rc=$?
check "unknown camera: exit 1" eq "$rc" 1
check "unknown camera: says so" contains "$T/out" "no camera 'gate'"
check "unknown camera: no link made" test ! -e "$ETSTPM_MODELS_DIR/cameras/gate/current"
# --rollback of one camera.
make_model "$T/t4" t4
"$UPDATE_MODEL" --camera top "$T/t4" >"$T/out" 2>&1 || fail "camera rollback setup"
"$UPDATE_MODEL" --camera top --rollback >"$T/out" 2>&1; rc=$?
check "camera --rollback: exit 0" eq "$rc" 0
check "camera --rollback: back on the previous release" eq "$(readlink "$ETSTPM_MODELS_DIR/cameras/top/current")" "../../releases/$T1"
check "camera --rollback: station link untouched" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/$M1"
teardown

finish
