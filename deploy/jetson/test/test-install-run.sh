#!/usr/bin/env bash
# install.sh into a DESTDIR with the shims, then the installed ExecStart/ExecStartPre/engine-build scripts:
# what they hand to docker (GPU runtime, host network, volumes, notify socket, watchdog interval).
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

setup
export DESTDIR="$T/root"
REF=registry.test/etstpm-edge:1.0
IMG="$(image_id "$REF")"
make_model "$T/m1" v1; M1="$(model_id "$T/m1")"
"$JETSON_DIR/install.sh" --model "$T/m1" "$REF" >"$T/out" 2>&1; rc=$?
LIB="$DESTDIR/usr/local/lib/etstpm-edge"
check "install: exit 0" eq "$rc" 0
check "install: scripts installed executable" test -x "$LIB/etstpm-edge-run" -a -x "$LIB/etstpm-notify-relay" -a -x "$LIB/update.sh" -a -x "$LIB/device-check.sh"
check "install: units installed" test -f "$DESTDIR/etc/systemd/system/etstpm-edge.service" -a -f "$DESTDIR/etc/systemd/system/etstpm-edge-engine.service"
check "install: site config created from the example" test -f "$DESTDIR/etc/etstpm-edge/config.json"
check "install: image pulled and recorded by ID" eq "$(cat "$ETSTPM_STATE_DIR/image")" "$IMG"
check "install: model installed as current release" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/$M1"
check "install: no engine build during install (the unit does it)" lacks "$FAKE_LOG" "engine-build.js"
check "install: units enabled" contains "$FAKE_LOG" "systemctl enable etstpm-edge-engine.service etstpm-edge.service"
check "install: engine unit started before the daemon" before "$FAKE_LOG" "systemctl start etstpm-edge-engine.service" "systemctl start etstpm-edge.service"
echo '{"model": {"dir": "/models/current"}}' >"$DESTDIR/etc/etstpm-edge/config.json.site"
cp "$DESTDIR/etc/etstpm-edge/config.json.site" "$DESTDIR/etc/etstpm-edge/config.json"
"$JETSON_DIR/install.sh" --no-start "$REF" >"$T/out" 2>&1
check "install: a reinstall keeps the site config" cmp -s "$DESTDIR/etc/etstpm-edge/config.json" "$DESTDIR/etc/etstpm-edge/config.json.site"

# ExecStart: the docker command line the relay runs.
: >"$FAKE_LOG"
printf 'ETSTPM_MQTT_PASSWORD=pa55-w0rd-xyz\n' >"$ETSTPM_CONFIG_DIR/secrets.env"
RUNTIME_DIRECTORY="$T/run" WATCHDOG_USEC=30000000 WATCHDOG_PID=1 "$LIB/etstpm-edge-run" 2>"$T/out"; rc=$?
check "run: exit status of docker run" eq "$rc" 0
run_line="$(grep '^docker run' "$FAKE_LOG")"
printf '%s\n' "$run_line" >"$T/run_line"
check "run: GPU runtime, host network, init" contains "$T/run_line" "--runtime nvidia --network host --init"
check "run: models read-only, engine cache read-write, config folder read-only" contains "$T/run_line" \
  "-v $ETSTPM_MODELS_DIR:/models:ro -v $ETSTPM_TRT_CACHE_DIR:/var/cache/etstpm/trt -v $ETSTPM_CONFIG_DIR:/etc/etstpm:ro"
check "run: secrets passed as an env file, not on the command line" contains "$T/run_line" "--env-file $ETSTPM_CONFIG_DIR/secrets.env"
check "run: secret value not on the command line" lacks "$T/run_line" "pa55-w0rd-xyz"
check "run: notify socket folder mounted and NOTIFY_SOCKET set inside" contains "$T/run_line" "-v $T/run:/run/etstpm-notify -e NOTIFY_SOCKET=/run/etstpm-notify/notify.sock"
check "run: watchdog interval passed" contains "$T/run_line" "-e WATCHDOG_USEC=30000000"
check "run: host WATCHDOG_PID not passed" lacks "$T/run_line" "WATCHDOG_PID"
check "run: the recorded image with the config" contains "$T/run_line" "$IMG --config /etc/etstpm/config.json"

: >"$FAKE_LOG"
"$LIB/etstpm-edge-cleanup"; rc=$?
check "cleanup: removes the container by name, exit 0" eq "$rc$(cat "$FAKE_LOG")" "0docker rm -f etstpm-edge"

: >"$FAKE_LOG"
FAKE_ENGINE_RC=4 "$LIB/etstpm-edge-engine-build" 2>"$T/out"; rc=$?
check "engine unit: passes the CLI's exit status (4 = TensorRT unavailable)" eq "$rc" 4
check "engine unit: explains the fallback" contains "$T/out" "the daemon will run on the next provider"
check "engine unit: builds for the current model at /models/current" contains "$FAKE_LOG" "--model-dir /models/current --cache-dir /var/cache/etstpm/trt"
check "engine unit: does not retry a failed build at every boot" lacks "$FAKE_LOG" "--retry-failed"
teardown

finish
