// Decides, before a session is created, whether TensorRT takes part and why not, so that a production start
// never builds an engine (minutes on a Jetson) inside the systemd watchdog window. Pure functions: the daemon
// passes in what it knows (platform facts, engine cache state) and logs the notes.
import * as fs from 'node:fs';
import { engineCacheKey, type EngineKey } from './cache-key';
import { engineDir, readEngineState, timingCacheDir, type EngineState } from './engine-cache';
import type { PlatformFacts } from './platform';
import {
  executionProviders,
  tensorrtProviderOptions,
  type ExecutionProviderEntry,
  type ProviderName,
  type TensorRtProviderConfig,
} from './provider-options';

export interface TensorRtSetupInput {
  model: { sha256: string; inputName: string; height: number; width: number };
  cacheDir: string;
  fp16: boolean;
  maxBatch: number;
  deviceId?: number;
  onnxruntimeVersion: string;
  platform: PlatformFacts;
}

export type TensorRtSetup =
  | {
      usable: true;
      key: EngineKey;
      engineDir: string;
      timingCacheDir: string;
      state: EngineState;
      provider: TensorRtProviderConfig;
    }
  | { usable: false; reason: string };

export function resolveTensorRt(input: TensorRtSetupInput): TensorRtSetup {
  const { platform } = input;
  if (platform.tensorrtVersion === null) {
    return { usable: false, reason: 'no TensorRT library (libnvinfer.so.<version>) found on this machine' };
  }
  if (platform.computeCapability === null) {
    return {
      usable: false,
      reason: 'GPU compute capability unknown (not a Jetson? set ETSTPM_GPU_COMPUTE_CAPABILITY, e.g. 8.7)',
    };
  }
  const key = engineCacheKey({
    modelSha256: input.model.sha256,
    tensorrtVersion: platform.tensorrtVersion,
    onnxruntimeVersion: input.onnxruntimeVersion,
    computeCapability: platform.computeCapability,
    fp16: input.fp16,
    height: input.model.height,
    width: input.model.width,
    maxBatch: input.maxBatch,
  });
  const dir = engineDir(input.cacheDir, key);
  const timing = timingCacheDir(input.cacheDir, platform.tensorrtVersion, platform.computeCapability);
  const provider = tensorrtProviderOptions({
    engineDir: dir,
    timingCacheDir: timing,
    fp16: input.fp16,
    inputName: input.model.inputName,
    height: input.model.height,
    width: input.model.width,
    maxBatch: input.maxBatch,
    deviceId: input.deviceId,
  });
  return { usable: true, key, engineDir: dir, timingCacheDir: timing, state: readEngineState(dir, key), provider };
}

export interface ProviderPlan {
  /** Providers that will be passed to onnxruntime, in order. */
  order: ProviderName[];
  /** The `executionProviders` value for InferenceSession.create. */
  entries: ExecutionProviderEntry[];
  /** One log line per decision (why TensorRT was dropped, or that it uses a prebuilt engine). */
  notes: string[];
}

export interface PlanOptions {
  /** Let TensorRT build a missing engine during start (development only; a Jetson needs minutes). */
  allowEngineBuildAtStart?: boolean;
  /** Command to show in the "engine not built" note. */
  buildCommand?: string;
}

export const ENGINE_BUILD_COMMAND = 'node dist/src/tensorrt/engine-build.js --model-dir <model.dir> --cache-dir <model.tensorrt.cacheDir>';

function nextOf(order: readonly ProviderName[]): string {
  return order.length > 0 ? order.join(' -> ') : 'nothing (no execution provider left)';
}

export function planProviders(requested: readonly ProviderName[], trt: TensorRtSetup | null, opts: PlanOptions = {}): ProviderPlan {
  const notes: string[] = [];
  let trtConfig: TensorRtProviderConfig | null = null;
  const rest = requested.filter((p) => p !== 'tensorrt');
  if (requested.includes('tensorrt')) {
    if (trt === null || !trt.usable) {
      notes.push(`TensorRT unavailable: ${trt === null ? 'not probed' : trt.reason}; using ${nextOf(rest)}`);
    } else if (trt.state.state === 'ready') {
      trtConfig = trt.provider;
      notes.push(`TensorRT: prebuilt engine ${trt.key.id} (${trt.provider.trt_fp16_enable === '1' ? 'fp16' : 'fp32'}) from ${trt.engineDir}`);
    } else if (opts.allowEngineBuildAtStart) {
      trtConfig = trt.provider;
      notes.push(`TensorRT: no prebuilt engine ${trt.key.id}; building it during start (takes minutes on a Jetson)`);
    } else {
      const why = trt.state.state === 'incomplete' ? `incomplete (${trt.state.reason})` : 'not built yet';
      notes.push(
        `TensorRT engine ${trt.key.id} ${why}: run \`${opts.buildCommand ?? ENGINE_BUILD_COMMAND}\`; using ${nextOf(rest)} until then`,
      );
    }
  }
  const order = requested.filter((p) => p !== 'tensorrt' || trtConfig !== null);
  return { order, entries: executionProviders(order, trtConfig), notes };
}

/** Log line for a provider whose session creation failed at run time, naming the next one tried. */
export function fallbackLine(failed: ProviderName, error: unknown, remaining: readonly ProviderName[]): string {
  const msg = (error instanceof Error ? error.message : String(error)).split('\n')[0]!.trim();
  return `execution provider ${failed} failed: ${msg}; falling back to ${nextOf(remaining)}`;
}

/**
 * True when onnxruntime's error means the provider cannot be used in this build or on this machine (as opposed to
 * a broken model). Messages seen: CPU-only binding (linux/arm64 npm package): "... is unsupported: 'tensorrt'";
 * GPU-enabled binding without provider libraries (linux/x64 npm package, install skipped): "Failed to load
 * shared library"; missing CUDA/TensorRT runtime libraries or device: the dlopen / CUDA error text.
 */
export function isProviderUnavailableError(error: unknown): boolean {
  const msg = error instanceof Error ? error.message : String(error);
  return /is unsupported: '(tensorrt|cuda)'|Failed to load (shared )?library|libnvinfer|libcudart|libcublas|libcudnn|no CUDA-capable device|CUDA driver version is insufficient/i.test(msg);
}

/** Version of the installed onnxruntime-node package (its TensorRT provider partitions the graph). */
export function onnxruntimeNodeVersion(): string {
  const pkg = require.resolve('onnxruntime-node/package.json');
  return (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version: string }).version;
}
