#!/usr/bin/env bash
# The jetson-gst frame pipeline (docs/deploy-jetson.md) with its two NVIDIA elements replaced by their software
# equivalents, against a real RTSP server (test/fixtures/rtsp_server.py, H.264 over TCP):
#   nvv4l2decoder                              -> avdec_h264
#   nvvidconv left/top/right/bottom + scale    -> videocrop + videoscale + videoconvert
# Everything else is the production string: rtspsrc caps filter, parsebin, RGBA caps, fps cap (videorate in system memory), RGB out on
# stdout with gst-launch -q. Checks that stdout carries whole RGB frames only and that a frame equals the
# cropped, scaled source image. nvv4l2decoder/nvvidconv themselves only exist on a Jetson.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
REPO="$(cd "$JETSON_DIR/../.." && pwd)"
for tool in gst-launch-1.0 ffmpeg; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/install-deps.sh all)"; exit 1; }
done
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null \
  || { echo "missing: system python3 with gi + GstRtspServer (scripts/install-deps.sh all)"; exit 1; }

setup
W=256 H=192 X=100 Y=50 CW=400 CH=400 SRC_W=640 SRC_H=480
ffmpeg -loglevel error -y -f lavfi -i "testsrc=size=${SRC_W}x${SRC_H}:rate=1" -frames:v 1 "$T/img.png"
port=$((20000 + RANDOM % 20000))
/usr/bin/python3 "$REPO/test/fixtures/rtsp_server.py" --port "$port" --mount /cam --fps 10 --hold 1 --codec h264 \
  "$T/img.png" >"$T/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q READY "$T/server.log" && break; sleep 0.1; done

# The production pipeline with the two substitutions (see docs/deploy-jetson.md, "Hardware decode").
timeout 6 gst-launch-1.0 -q -e \
  rtspsrc location="rtsp://127.0.0.1:$port/cam" protocols=tcp latency=200 tcp-timeout=10000000 drop-on-latency=true \
  ! application/x-rtp,media=video ! parsebin ! avdec_h264 \
  ! videocrop left=$X top=$Y right=$((SRC_W - X - CW)) bottom=$((SRC_H - Y - CH)) ! videoscale ! videoconvert \
  ! video/x-raw,format=RGBA,width=$W,height=$H \
  ! videorate drop-only=true ! video/x-raw,framerate=5000/1000 ! videoconvert ! video/x-raw,format=RGB \
  ! fdsink fd=1 sync=false >"$T/frames.rgb" 2>"$T/gst.log"
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null

bytes="$(stat -c %s "$T/frames.rgb")"
frame=$((W * H * 3))
check "gst: stdout holds whole RGB frames only ($bytes bytes)" test $((bytes % frame)) -eq 0
check "gst: frames arrived (>= 10 in 6 s at 5 fps)" test $((bytes / frame)) -ge 10
check "gst: no errors on stderr" test ! -s "$T/gst.log"
# Reference: the same crop and scale of the source image by ffmpeg; H.264 and the scalers differ slightly.
ffmpeg -loglevel error -y -i "$T/img.png" -vf "crop=$CW:$CH:$X:$Y,scale=$W:$H" -f rawvideo -pix_fmt rgb24 "$T/ref.rgb"
diff="$(python3 - "$T/frames.rgb" "$T/ref.rgb" "$frame" <<'PY'
import sys
got = open(sys.argv[1], "rb").read()
ref = open(sys.argv[2], "rb").read()
n = int(sys.argv[3])
frame = got[-n:]  # last whole frame (the stream is one still image)
print(f"{sum(abs(a - b) for a, b in zip(frame, ref)) / n:.2f}")
PY
)"
echo "# mean absolute difference to the reference: $diff (0..255)"
check "gst: frame equals the cropped, scaled image in RGB order (mean abs diff < 12)" python3 -c "import sys; sys.exit(0 if float('$diff') < 12 else 1)"
teardown
finish
