#!/usr/bin/env bash
# The onnxruntime Node binding patch script on a file shaped like js/node/src/session_options_helper.cc
# (the TensorRT branch of ParseExecutionProviders): inserts once, is idempotent, refuses an unexpected shape.
# Compiling the patched binding needs the onnxruntime source tree and TensorRT: that happens in Dockerfile.l4t.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
PATCH="$JETSON_DIR/ort/patch-node-trt-options.py"

setup
cat >"$T/helper.cc" <<'CC'
#ifdef USE_TENSORRT
    } else if (name == "tensorrt") {
      OrtTensorRTProviderOptionsV2* options;
      Ort::ThrowOnError(Ort::GetApi().CreateTensorRTProviderOptions(&options));
      options->device_id = deviceId;
      sessionOptions.AppendExecutionProvider_TensorRT_V2(*options);
      Ort::GetApi().ReleaseTensorRTProviderOptions(options);
#endif
CC
cp "$T/helper.cc" "$T/orig.cc"
python3 "$PATCH" "$T/helper.cc" >"$T/out" 2>&1; rc=$?
check "patch: exit 0" eq "$rc" 0
check "patch: forwards trt_* keys through UpdateTensorRTProviderOptions" contains "$T/helper.cc" "Ort::GetApi().UpdateTensorRTProviderOptions("
check "patch: inserted before the provider is appended" before "$T/helper.cc" "UpdateTensorRTProviderOptions(" "AppendExecutionProvider_TensorRT_V2(*options);"
check "patch: keeps the device id" contains "$T/helper.cc" 'trtValues{std::to_string(deviceId)}'
check "patch: original lines kept" test "$(grep -c . "$T/orig.cc")" -eq "$(grep -cxFf "$T/orig.cc" "$T/helper.cc")"
cp "$T/helper.cc" "$T/once.cc"
python3 "$PATCH" "$T/helper.cc" >"$T/out" 2>&1; rc=$?
check "patch: second run exit 0, file unchanged" eq "$rc$(cmp -s "$T/helper.cc" "$T/once.cc" && echo same)" "0same"
check "patch: second run says already patched" contains "$T/out" "already patched"

grep -v AppendExecutionProvider_TensorRT_V2 "$T/orig.cc" >"$T/changed.cc"
python3 "$PATCH" "$T/changed.cc" >"$T/out" 2>&1; rc=$?
check "patch: refuses a file without the anchor (exit 1)" eq "$rc" 1
check "patch: explains why" contains "$T/out" "found 0"
cat "$T/orig.cc" "$T/orig.cc" >"$T/twice.cc"
python3 "$PATCH" "$T/twice.cc" >"$T/out" 2>&1; rc=$?
check "patch: refuses an ambiguous file (exit 1)" eq "$rc" 1
teardown

finish
