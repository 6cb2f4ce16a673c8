#!/usr/bin/env bash
# docs/commissioning.md, run live on the synthetic line: the false-reject rate a new model gets on parts it never saw.
#   1. the daemon runs the demo model on a synthetic camera that shows good parts only (defectRate=0, seed A);
#   2. the console captures CAPTURE good parts (every EVERY_N-th frame) into ROOT/CAM/train/good;
#   3. `etstpm train` fits the default detector on them and calibrates its threshold (defaults, nothing tuned);
#   4. `etstpm export` writes the model, the configuration points the camera at it and at a new part stream
#      (seed B, 10 % defective), SIGHUP swaps it in;
#   5. demo-truth reads the results for SECONDS and compares each verdict with what was really on the belt.
# Writes OUT (JSON): the commands' wall times, the calibration the toolkit stored, and demo-truth's counts.
#   bash bench/daemon/commissioning.sh [OUT]     (default bench/results/commissioning-live.json)
# Needs scripts/install-deps.sh all and the ResNet-18 weights (WEIGHTS, default ../shared/weights/...).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-bench/results/commissioning-live.json}"
work="$(mktemp -d /tmp/etstpm-commissioning.XXXXXX)"
shared="${ETSTPM_SHARED:-$(cd .. && pwd)/shared}"
weights="${WEIGHTS:-$shared/weights/resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth}"
capture="${CAPTURE:-400}" every_n="${EVERY_N:-2}" seconds="${SECONDS_LIVE:-150}" fps="${FPS:-5}"
cam=sim-1
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
mqtt_port=$(free_port) http_port=$(free_port)
api="http://127.0.0.1:$http_port/api"
now() { date +%s.%N; }
config() {  # $1 url, $2 model dir
  cat > "$work/config.json" <<EOF
{ "cameras": [ { "id": "$cam", "url": "$1", "model": "$2" } ],
  "mqtt": { "embeddedPort": $mqtt_port }, "http": { "port": $http_port },
  "console": { "capture": { "root": "$work/captures" }, "reviewDir": "$work/review" },
  "status": { "intervalMs": 5000 } }
EOF
}
npm run build --silent
config "synthetic://?defectRate=0&seed=101&fps=$fps" models/demo
node dist/src/main.js --config "$work/config.json" 2> "$work/daemon.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$http_port/healthz" > /dev/null && break; sleep 1; done

echo "== 2. capture $capture good parts (every $every_n-th frame)"
t0=$(now)
curl -sf -X POST -H 'content-type: application/json' -d "{\"everyN\":$every_n,\"maxImages\":$capture}" \
  "$api/cameras/$cam/capture/start" > /dev/null
while :; do
  st=$(curl -sf "$api/cameras/$cam/capture")
  node -e 'const s=JSON.parse(process.argv[1]);process.exit(s.state==="running"?1:0)' "$st" && break
  sleep 2
done
t_capture=$(node -e "console.log(($(now)-$t0).toFixed(1))")
echo "$st"

echo "== 3. train (defaults) on $work/captures/$cam"
t0=$(now)
nice .venv/bin/etstpm train --data "$work/captures" --category "$cam" --weights "$weights" --device cpu \
  --out "$work/run" 2>&1 | tail -n 5
t_train=$(node -e "console.log(($(now)-$t0).toFixed(1))")
echo "== 4. export, point the camera at it and at new parts, SIGHUP"
.venv/bin/etstpm export --run "$work/run" --out "$work/model" 2>&1 | tail -n 2
live_url="synthetic://?defectRate=0.1&seed=202&fps=$fps"
config "$live_url" "$work/model"
kill -HUP $daemon
sleep 8   # the decoder restarts for the new model and stream; demo-truth needs seq to start with the new stream
echo "== 5. demo-truth for $seconds s"
node dist/src/tools/demo-truth.js --mqtt "mqtt://127.0.0.1:$mqtt_port" --camera "$cam" --url "$live_url" \
  --seconds "$seconds" > "$work/truth.json"
cat "$work/truth.json"
node -e '
const fs = require("fs");
const [truthFile, modelJson, out, tc, tt, capture, everyN] = process.argv.slice(1);
const m = JSON.parse(fs.readFileSync(modelJson, "utf8"));
const r = {
  what: "docs/commissioning.md live on the synthetic line: capture good parts, train with defaults, export, SIGHUP, score new parts",
  command: "bash bench/daemon/commissioning.sh",
  created: new Date().toISOString(),
  capture: { images: Number(capture), everyN: Number(everyN), wallS: Number(tc) },
  train: { wallS: Number(tt), method: m.method, threshold: m.threshold, normalization: m.normalization },
  live: JSON.parse(fs.readFileSync(truthFile, "utf8")),
};
fs.writeFileSync(out, JSON.stringify(r, null, 2) + "\n");
' "$work/truth.json" "$work/model/model.json" "$out" "$t_capture" "$t_train" "$capture" "$every_n"
echo "wrote $out (work folder $work)"
