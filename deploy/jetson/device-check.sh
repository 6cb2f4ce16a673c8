#!/usr/bin/env bash
# On-device smoke check after install (Jetson only; it cannot run on a machine without the NVIDIA runtime):
#   sudo /usr/local/lib/etstpm-edge/device-check.sh [--camera rtsp://...]
# Checks the NVIDIA runtime, the hardware decode elements and the TensorRT-enabled binding inside the recorded
# image, the engine cache state for the current model, optionally decodes 10 s of a camera through the jetson-gst
# pipeline (frames and fps), and /healthz. Exit 0 when every check passed.
set -uo pipefail
here="$(dirname "$(readlink -f "$0")")"
[ -r "$here/etstpm-edge-common.sh" ] || here="$here/bin"
# shellcheck source=bin/etstpm-edge-common.sh
. "$here/etstpm-edge-common.sh"

camera=""
if [ "${1:-}" = "--camera" ] && [ -n "${2:-}" ]; then camera="$2"; fi
failed=0
result() { # result NAME STATUS [DETAIL]
  if [ "$2" -eq 0 ]; then printf 'ok   %s %s\n' "$1" "${3:-}"; else printf 'FAIL %s %s\n' "$1" "${3:-}"; failed=$((failed + 1)); fi
}

image="$(current_image)"
[ -n "$image" ] || die "no image recorded in $ETSTPM_STATE_DIR/image (run install.sh first)"
args=()
common_run_args args

"$DOCKER" info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"nvidia"'
result "docker nvidia runtime" $?

for element in nvv4l2decoder nvvidconv; do
  "$DOCKER" run --rm "${args[@]}" --entrypoint gst-inspect-1.0 "$image" "$element" >/dev/null 2>&1
  result "gstreamer element $element in the container" $?
done

versions="$("$DOCKER" run --rm "${args[@]}" --entrypoint node "$image" -e \
  "const o=require('onnxruntime-node');const fs=require('fs');const d=require('path').dirname(require.resolve('onnxruntime-node/package.json'))+'/bin/napi-v6/linux/arm64';console.log(JSON.stringify({versions:o.env.versions,tensorrt:fs.existsSync(d+'/libonnxruntime_providers_tensorrt.so')}))" 2>&1)"
printf '%s' "$versions" | grep -q '"tensorrt":true'
result "onnxruntime-node with the TensorRT provider library" $? "$versions"

engine="$("$DOCKER" run --rm "${args[@]}" --entrypoint node "$image" dist/src/tensorrt/engine-build.js \
  --config "$CTR_CONFIG" --model-dir "$CTR_MODELS/current" --cache-dir "$CTR_TRT_CACHE" --check 2>&1)"
rc=$?
result "TensorRT engine for the current model" "$rc" "$(printf '%s' "$engine" | tail -1)"

if [ -n "$camera" ]; then
  size="$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["input"]["width"], m["input"]["height"])' \
    "$ETSTPM_MODELS_DIR/current/model.json")"
  read -r w h <<<"$size"
  bytes="$("$DOCKER" run --rm "${args[@]}" --entrypoint bash "$image" -c \
    "timeout 10 gst-launch-1.0 -q -e rtspsrc location='$camera' protocols=tcp latency=200 drop-on-latency=true \
      ! application/x-rtp,media=video ! parsebin ! nvv4l2decoder ! nvvidconv \
      ! video/x-raw,format=RGBA,width=$w,height=$h ! videoconvert ! video/x-raw,format=RGB ! fdsink fd=1 sync=false | wc -c")"
  frames=$(( ${bytes:-0} / (w * h * 3) ))
  [ "$frames" -gt 0 ] && [ $(( ${bytes:-0} % (w * h * 3) )) -eq 0 ]
  result "jetson-gst decode of $camera" $? "$frames frames of ${w}x${h} in 10 s (~$((frames / 10)) fps)"
fi

"$CURL" -fsS -m 5 "$ETSTPM_HEALTH_URL" >/dev/null 2>&1
result "daemon /healthz" $? "$ETSTPM_HEALTH_URL"

[ "$failed" -eq 0 ] || { printf '%d check(s) failed\n' "$failed"; exit 1; }
echo "all device checks passed"
