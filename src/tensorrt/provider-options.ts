// onnxruntime TensorRT execution-provider options for the ET-STPM model.
//
// The names are onnxruntime's own TensorRT provider option keys (the strings UpdateTensorRTProviderOptions
// accepts). onnxruntime-node as shipped forwards only `deviceId` to TensorRT; the image build patches the binding
// (deploy/jetson/ort/patch-node-trt-options.py) so that every other `trt_*` string property of the provider
// object is forwarded too. With an unpatched binding these keys are ignored silently, which is why the engine
// build checks that an engine file really appeared in the cache directory.
import * as path from 'node:path';

export interface TensorRtOptionsInput {
  /** Engine cache directory for this exact key (see engine-cache.ts `engineDir`). */
  engineDir: string;
  /** Timing cache directory (shared by all models of one TensorRT version and GPU). */
  timingCacheDir: string;
  fp16: boolean;
  /** Model input name (model.json input.name), e.g. "frames". */
  inputName: string;
  height: number;
  width: number;
  /** Largest batch the daemon runs: engines are built for batch 1..maxBatch (one optimisation profile). */
  maxBatch: number;
  deviceId?: number;
  /** Builder workspace cap in bytes; Jetson shares memory between CPU and GPU, so keep it modest. */
  maxWorkspaceBytes?: number;
}

/** What goes into `executionProviders` for TensorRT: name + deviceId + onnxruntime's trt_* keys (strings). */
export interface TensorRtProviderConfig {
  readonly name: 'tensorrt';
  readonly deviceId: number;
  readonly [option: `trt_${string}`]: string;
}

export const DEFAULT_TRT_WORKSPACE_BYTES = 1 << 30; // 1 GiB

/** Shape string in onnxruntime's profile syntax: "<input>:<N>x<H>x<W>x3" (NHWC uint8 frames). */
export function profileShape(inputName: string, batch: number, height: number, width: number): string {
  return `${inputName}:${batch}x${height}x${width}x3`;
}

export function tensorrtProviderOptions(o: TensorRtOptionsInput): TensorRtProviderConfig {
  const problems: string[] = [];
  if (!o.engineDir) problems.push('engineDir: empty');
  if (!o.timingCacheDir) problems.push('timingCacheDir: empty');
  if (!/^[A-Za-z0-9_.\-/]+$/.test(o.inputName ?? '')) {
    // ',' ':' and 'x' have meaning in the profile syntax; a name with them would be mis-parsed by onnxruntime.
    problems.push(`inputName: ${JSON.stringify(o.inputName)} is empty or contains characters the profile syntax cannot carry`);
  }
  for (const k of ['height', 'width', 'maxBatch'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) problems.push(`${k}: expected a positive integer, got ${JSON.stringify(o[k])}`);
  }
  const deviceId = o.deviceId ?? 0;
  if (!Number.isInteger(deviceId) || deviceId < 0) problems.push(`deviceId: expected an integer >= 0, got ${deviceId}`);
  const workspace = o.maxWorkspaceBytes ?? DEFAULT_TRT_WORKSPACE_BYTES;
  if (!Number.isInteger(workspace) || workspace < 1) problems.push(`maxWorkspaceBytes: expected a positive integer, got ${workspace}`);
  if (problems.length > 0) throw new Error(`invalid TensorRT provider options: ${problems.join('; ')}`);

  return {
    name: 'tensorrt',
    deviceId,
    trt_fp16_enable: o.fp16 ? '1' : '0',
    trt_engine_cache_enable: '1',
    trt_engine_cache_path: path.resolve(o.engineDir),
    trt_timing_cache_enable: '1',
    trt_timing_cache_path: path.resolve(o.timingCacheDir),
    // Explicit profile: without it TensorRT builds for the first batch size it sees and rebuilds (minutes on a
    // Jetson) whenever a larger batch arrives, i.e. inside the running daemon.
    trt_profile_min_shapes: profileShape(o.inputName, 1, o.height, o.width),
    trt_profile_opt_shapes: profileShape(o.inputName, o.maxBatch, o.height, o.width),
    trt_profile_max_shapes: profileShape(o.inputName, o.maxBatch, o.height, o.width),
    trt_max_workspace_size: String(workspace),
  };
}

export type ProviderName = 'tensorrt' | 'cuda' | 'cpu';
export type ExecutionProviderEntry = TensorRtProviderConfig | { readonly name: 'cuda'; readonly deviceId: number } | 'cpu';

/**
 * The `executionProviders` list for onnxruntime-node in the configured order. onnxruntime assigns each node to
 * the first provider in the list that supports it, so this order is also the per-node fallback order.
 */
export function executionProviders(order: readonly ProviderName[], trt: TensorRtProviderConfig | null): ExecutionProviderEntry[] {
  const seen = new Set<ProviderName>();
  const out: ExecutionProviderEntry[] = [];
  for (const p of order) {
    if (seen.has(p)) throw new Error(`model.providers: "${p}" is listed twice`);
    seen.add(p);
    if (p === 'tensorrt') {
      if (trt === null) continue; // caller decided TensorRT is not usable now (see provider-plan.ts)
      out.push(trt);
    } else if (p === 'cuda') {
      out.push({ name: 'cuda', deviceId: trt?.deviceId ?? 0 });
    } else if (p === 'cpu') {
      out.push('cpu');
    } else {
      throw new Error(`model.providers: unknown provider ${JSON.stringify(p)} (expected tensorrt, cuda or cpu)`);
    }
  }
  return out;
}
