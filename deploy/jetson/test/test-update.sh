#!/usr/bin/env bash
# update.sh against the docker/systemctl/curl shims: switch, health wait, rollback, and that nothing changes
# when the pull or the engine build fails.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
UPDATE="$JETSON_DIR/update.sh"

start_with_image() { # installed state: image v1 running, a model present (so the engine build step runs)
  pretend_pulled registry.test/etstpm-edge:1.0
  OLD="$(image_id registry.test/etstpm-edge:1.0)"
  printf '%s\n' "$OLD" >"$ETSTPM_STATE_DIR/image"
  make_model "$ETSTPM_MODELS_DIR/releases/m1" v1
  ln -s releases/m1 "$ETSTPM_MODELS_DIR/current"
}

# 1. A healthy new image: engine built with it first, then switched; previous recorded.
setup; start_with_image
NEW="$(image_id registry.test/etstpm-edge:1.1)"
"$UPDATE" 1.1 >"$T/out" 2>&1; rc=$?
check "update: exit 0 on a healthy image" eq "$rc" 0
check "update: the new image is current" eq "$(cat "$ETSTPM_STATE_DIR/image")" "$NEW"
check "update: the old image is recorded as previous" eq "$(cat "$ETSTPM_STATE_DIR/image.previous")" "$OLD"
check "update: pulled by tag from ETSTPM_IMAGE_REPO" contains "$FAKE_LOG" "docker pull registry.test/etstpm-edge:1.1"
check "update: engine built with the new image before the restart" before "$FAKE_LOG" "--entrypoint node $NEW dist/src/tensorrt/engine-build.js" "systemctl restart etstpm-edge.service image=$NEW"
check "update: an update retries a previously failed engine build" contains "$FAKE_LOG" "--prune 2 --retry-failed"
check "update: engine build mounts models read-only and the cache read-write" contains "$FAKE_LOG" "-v $ETSTPM_MODELS_DIR:/models:ro -v $ETSTPM_TRT_CACHE_DIR:/var/cache/etstpm/trt"

# 1b. A second update removes the image from before the previous one (disk), never current or previous.
"$UPDATE" 1.2 >"$T/out" 2>&1; rc=$?
check "second update: exit 0" eq "$rc" 0
check "second update: previous is 1.1" eq "$(cat "$ETSTPM_STATE_DIR/image.previous")" "$NEW"
check "second update: the 1.0 image is removed" contains "$FAKE_LOG" "docker image rm $OLD"
check "second update: the 1.1 image (rollback target) is kept" lacks "$FAKE_LOG" "docker image rm $NEW"
teardown

# 2. The new image never becomes healthy: rolled back to the old one, exit 2, failed image recorded.
setup; start_with_image
BAD="$(image_id registry.test/etstpm-edge:1.2-bad)"
export FAKE_BAD_IMAGE="$BAD"
"$UPDATE" 1.2-bad >"$T/out" 2>&1; rc=$?
check "rollback: exit 2 when the new image is unhealthy" eq "$rc" 2
check "rollback: the old image is current again" eq "$(cat "$ETSTPM_STATE_DIR/image")" "$OLD"
check "rollback: the failed image is recorded" eq "$(cat "$ETSTPM_STATE_DIR/image.failed")" "$BAD"
check "rollback: restarted with the new image, then with the old one" before "$FAKE_LOG" "systemctl restart etstpm-edge.service image=$BAD" "systemctl restart etstpm-edge.service image=$OLD"
check "rollback: health was polled while the bad image ran" contains "$FAKE_LOG" "curl image=$BAD"
check "rollback: says so" contains "$T/out" "rolled back to $OLD, healthy again"
check "rollback: models untouched" eq "$(readlink "$ETSTPM_MODELS_DIR/current")" "releases/m1"
teardown

# 3. Rolled back, but the old image is unhealthy too (e.g. broker down): exit 3, stays on the old image.
setup; start_with_image
BAD="$(image_id registry.test/etstpm-edge:1.3)"
export FAKE_BAD_IMAGE="$BAD $OLD"
"$UPDATE" 1.3 >"$T/out" 2>&1; rc=$?
check "double failure: exit 3" eq "$rc" 3
check "double failure: stays on the old image" eq "$(cat "$ETSTPM_STATE_DIR/image")" "$OLD"
teardown

# 4. Pull fails: nothing changes, no restart.
setup; start_with_image
export FAKE_PULL_FAIL=registry.test/etstpm-edge:9.9
"$UPDATE" 9.9 >"$T/out" 2>&1; rc=$?
check "pull failure: exit 1" eq "$rc" 1
check "pull failure: image unchanged" eq "$(cat "$ETSTPM_STATE_DIR/image")" "$OLD"
check "pull failure: no restart" lacks "$FAKE_LOG" "systemctl restart"
check "pull failure: message says nothing changed" contains "$T/out" "nothing changed"
teardown

# 5. Engine build with the new image fails: nothing changes, no restart.
setup; start_with_image
export FAKE_ENGINE_RC=5
"$UPDATE" 1.4 >"$T/out" 2>&1; rc=$?
check "engine build failure: exit 1" eq "$rc" 1
check "engine build failure: image unchanged" eq "$(cat "$ETSTPM_STATE_DIR/image")" "$OLD"
check "engine build failure: no restart" lacks "$FAKE_LOG" "systemctl restart"
check "engine build failure: message names the exit code" contains "$T/out" "engine build with registry.test/etstpm-edge:1.4 failed (exit 5)"
teardown

# 6. Same image again: nothing to do.
setup; start_with_image
"$UPDATE" 1.0 >"$T/out" 2>&1; rc=$?
check "same image: exit 0" eq "$rc" 0
check "same image: no restart" lacks "$FAKE_LOG" "systemctl restart"
teardown

# 7. Explicit rollback after a good update; and a digest reference is used as given.
setup; start_with_image
DIGEST_REF="registry.test/etstpm-edge@sha256:$(printf 'x' | sha256sum | cut -c1-64)"
"$UPDATE" "$DIGEST_REF" >"$T/out" 2>&1; rc=$?
check "digest: exit 0" eq "$rc" 0
check "digest: pulled exactly that reference" contains "$FAKE_LOG" "docker pull $DIGEST_REF"
"$UPDATE" --rollback >"$T/out" 2>&1; rc=$?
check "--rollback: exit 0" eq "$rc" 0
check "--rollback: old image current" eq "$(cat "$ETSTPM_STATE_DIR/image")" "$OLD"
check "--rollback: the undone image becomes previous (roll forward possible)" eq "$(cat "$ETSTPM_STATE_DIR/image.previous")" "$(image_id "$DIGEST_REF")"
teardown

# 8. A second update while one runs is refused.
setup; start_with_image
exec 8>"$ETSTPM_STATE_DIR/update.lock"
flock 8
"$UPDATE" 1.5 >"$T/out" 2>&1; rc=$?
exec 8>&-
check "lock: second update refused with exit 1" eq "$rc" 1
check "lock: message" contains "$T/out" "another update is running"
teardown

finish
