// TensorRT engine cache key.
//
// A serialized TensorRT engine is only valid for the exact network, the TensorRT version that built it, the
// precision flags, the optimisation profile (input shapes) and the GPU (compute capability) it was tuned on.
// onnxruntime's TensorRT provider names its cache files after a hash of the graph, but it does not notice a
// TensorRT upgrade or a changed fp16 flag, so every such input goes into the name of the cache directory instead:
// a new image (new TensorRT) or a new model then simply misses the cache instead of loading a stale engine.
import { createHash } from 'node:crypto';

export interface EngineKeyInputs {
  /** sha256 (hex) of model.onnx, as recorded in model.json and verified before use. */
  modelSha256: string;
  /** TensorRT version of the libraries that build and run the engine, e.g. "10.3.0". */
  tensorrtVersion: string;
  /** onnxruntime version, e.g. "1.30.0" (its TensorRT provider decides how the graph is partitioned). */
  onnxruntimeVersion: string;
  /** CUDA compute capability of the GPU, e.g. "8.7" for Jetson Orin. */
  computeCapability: string;
  fp16: boolean;
  /** Model input size (model.json input.height / input.width). */
  height: number;
  width: number;
  /** Largest batch the daemon runs (model.maxBatch): the top of the optimisation profile. */
  maxBatch: number;
}

export interface EngineKey {
  /** Directory name under the cache root: readable prefix + digest of every input. */
  id: string;
  /** Full sha256 of the canonical key string. */
  digest: string;
  /** The canonical key string that was hashed (stored next to the engine for humans). */
  canonical: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const VERSION = /^\d+(\.\d+){1,3}$/;
const COMPUTE_CAPABILITY = /^\d+\.\d+$/;

/** Throws an Error naming every invalid field; returns the inputs normalized (lower-case sha256). */
export function validateEngineKeyInputs(inputs: EngineKeyInputs): EngineKeyInputs {
  const problems: string[] = [];
  const sha = String(inputs.modelSha256 ?? '').toLowerCase();
  if (!SHA256_HEX.test(sha)) problems.push(`modelSha256: expected 64 hex characters, got ${JSON.stringify(inputs.modelSha256)}`);
  if (!VERSION.test(String(inputs.tensorrtVersion ?? ''))) {
    problems.push(`tensorrtVersion: expected a dotted version like "10.3.0", got ${JSON.stringify(inputs.tensorrtVersion)}`);
  }
  if (!VERSION.test(String(inputs.onnxruntimeVersion ?? ''))) {
    problems.push(`onnxruntimeVersion: expected a dotted version like "1.30.0", got ${JSON.stringify(inputs.onnxruntimeVersion)}`);
  }
  if (!COMPUTE_CAPABILITY.test(String(inputs.computeCapability ?? ''))) {
    problems.push(`computeCapability: expected "major.minor" like "8.7", got ${JSON.stringify(inputs.computeCapability)}`);
  }
  if (typeof inputs.fp16 !== 'boolean') problems.push(`fp16: expected a boolean, got ${JSON.stringify(inputs.fp16)}`);
  for (const k of ['height', 'width', 'maxBatch'] as const) {
    const v = inputs[k];
    if (!Number.isInteger(v) || v < 1) problems.push(`${k}: expected a positive integer, got ${JSON.stringify(v)}`);
  }
  if (problems.length > 0) throw new Error(`invalid TensorRT engine key inputs: ${problems.join('; ')}`);
  return { ...inputs, modelSha256: sha };
}

/** Deterministic key: the same inputs always give the same id; any change of any input gives another. */
export function engineCacheKey(raw: EngineKeyInputs): EngineKey {
  const k = validateEngineKeyInputs(raw);
  // Fixed field order and explicit names: the canonical string must never depend on object key order.
  const canonical = [
    'etstpm-trt-engine/1',
    `model=${k.modelSha256}`,
    `trt=${k.tensorrtVersion}`,
    `ort=${k.onnxruntimeVersion}`,
    `sm=${k.computeCapability}`,
    `precision=${k.fp16 ? 'fp16' : 'fp32'}`,
    `input=${k.maxBatch}x${k.height}x${k.width}x3`,
  ].join('\n');
  const digest = createHash('sha256').update(canonical).digest('hex');
  const sm = k.computeCapability.replace('.', '');
  const id = `${k.modelSha256.slice(0, 12)}-trt${k.tensorrtVersion}-sm${sm}-${k.fp16 ? 'fp16' : 'fp32'}` +
    `-b${k.maxBatch}-${k.height}x${k.width}-${digest.slice(0, 12)}`;
  return { id, digest, canonical };
}
