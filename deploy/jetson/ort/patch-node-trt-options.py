#!/usr/bin/env python3
"""Patches onnxruntime's Node.js binding (js/node/src/session_options_helper.cc) so that a TensorRT entry of
`executionProviders` forwards its `trt_*` string properties to UpdateTensorRTProviderOptions (fp16, engine cache,
timing cache, optimisation profile...). As shipped, the binding passes only `deviceId` to TensorRT.

usage: patch-node-trt-options.py PATH/TO/session_options_helper.cc
Exit 0 when patched (or already patched), 1 when the file does not have the expected shape (a newer onnxruntime
changed it: update this patch instead of building a binding that silently ignores the options).
"""
import sys

ANCHOR = "sessionOptions.AppendExecutionProvider_TensorRT_V2(*options);"
MARKER = "// etstpm: forward trt_* options"
BLOCK = """// etstpm: forward trt_* options (string values) through onnxruntime's own option parser, which rejects
      // unknown keys and bad values with a message naming them.
      if (epValue.IsObject()) {
        Napi::Object trtObject = epValue.As<Napi::Object>();
        std::vector<std::string> trtKeys{"device_id"};
        std::vector<std::string> trtValues{std::to_string(deviceId)};
        Napi::Array trtNames = trtObject.GetPropertyNames();
        for (uint32_t k = 0; k < trtNames.Length(); k++) {
          std::string key = trtNames.Get(k).As<Napi::String>().Utf8Value();
          if (key.rfind("trt_", 0) != 0) {
            continue;
          }
          Napi::Value value = trtObject.Get(key);
          if (!value.IsString()) {
            Ort::GetApi().ReleaseTensorRTProviderOptions(options);
            ORT_NAPI_THROW_TYPEERROR(epList.Env(), "Invalid argument: TensorRT option '", key, "' must be a string.");
          }
          trtKeys.push_back(key);
          trtValues.push_back(value.As<Napi::String>().Utf8Value());
        }
        std::vector<const char*> keyPointers;
        std::vector<const char*> valuePointers;
        for (size_t k = 0; k < trtKeys.size(); k++) {
          keyPointers.push_back(trtKeys[k].c_str());
          valuePointers.push_back(trtValues[k].c_str());
        }
        OrtStatus* trtStatus = Ort::GetApi().UpdateTensorRTProviderOptions(
            options, keyPointers.data(), valuePointers.data(), keyPointers.size());
        if (trtStatus != nullptr) {
          std::string message = Ort::GetApi().GetErrorMessage(trtStatus);
          Ort::GetApi().ReleaseStatus(trtStatus);
          Ort::GetApi().ReleaseTensorRTProviderOptions(options);
          ORT_NAPI_THROW_ERROR(epList.Env(), "Invalid TensorRT provider options: ", message);
        }
      }
      """


def patch(text):
    if MARKER in text:
        return text, "already patched"
    count = text.count(ANCHOR)
    if count != 1:
        raise ValueError(f"expected exactly one `{ANCHOR}` in the file, found {count}")
    # Keep the anchor's indentation: insert the block at the start of the anchor's line content.
    index = text.index(ANCHOR)
    return text[:index] + BLOCK + text[index:], "patched"


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 1
    path = argv[0]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        new_text, what = patch(text)
    except ValueError as exc:
        print(f"{path}: {exc}; the onnxruntime Node binding changed, update {__file__}", file=sys.stderr)
        return 1
    if new_text != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new_text)
    print(f"{path}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
