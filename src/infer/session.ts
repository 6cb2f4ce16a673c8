/**
 * onnxruntime-node session for an etstpm-model/1 folder: sha256 check, execution providers in the configured order
 * (only those the installed binding has) with fallback, contract check, warm-up, batched runs.
 */
import * as ort from 'onnxruntime-node';
import { Provider } from '../config/types';
import type { Logger } from '../log';
import { installedAvailability, type BackendInfo, type ProviderAvailability } from './available-providers';
import { ModelError, ModelManifest, readManifest, verifyModelFile } from './manifest';
import { FrameBatcher } from './tensor';
import {
  executionProviders,
  onnxruntimeNodeVersion,
  planProviders,
  probePlatform,
  resolveTensorRt,
  type ExecutionProviderEntry,
  type TensorRtProviderConfig,
} from '../tensorrt';

export interface InferenceOptions {
  modelDir: string;
  providers: Provider[];
  maxBatch: number;
  tensorrt: { cacheDir: string; fp16: boolean };
}

export interface BatchOutput {
  /** Raw image scores, one per frame. */
  scores: Float32Array;
  /** Raw anomaly maps, n * H * W floats (frame i at offset i*H*W). */
  maps: Float32Array;
  /** Wall time of session.run in ms. */
  runMs: number;
}

/** Attempt i: provider i preferred, the rest after it as per-node fallbacks (onnxruntime's list semantics). */
export function providerAttempts(providers: readonly Provider[]): Provider[][] {
  return providers.map((_, i) => providers.slice(i));
}

/**
 * TensorRT takes part only when src/tensorrt says it is usable (library found, prebuilt engine ready); its notes
 * say why not. Anything unexpected in that probe drops TensorRT instead of stopping the daemon.
 */
function tensorrtConfig(m: ModelManifest, opts: InferenceOptions, log: Logger): TensorRtProviderConfig | null {
  if (!opts.providers.includes('tensorrt')) return null;
  try {
    const setup = resolveTensorRt({
      model: { sha256: m.sha256, inputName: m.inputName, height: m.height, width: m.width },
      cacheDir: opts.tensorrt.cacheDir,
      fp16: opts.tensorrt.fp16,
      maxBatch: opts.maxBatch,
      onnxruntimeVersion: onnxruntimeNodeVersion(),
      platform: probePlatform(),
    });
    const plan = planProviders(opts.providers, setup);
    for (const note of plan.notes) log.info({ provider: 'tensorrt' }, note);
    return plan.order.includes('tensorrt') && setup.usable ? setup.provider : null;
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'TensorRT setup failed; continuing without it');
    return null;
  }
}

export type SessionFactory = (path: string, options: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>;

const defaultFactory: SessionFactory = (path, options) => ort.InferenceSession.create(path, options);

export type AvailabilityCheck = (requested: readonly Provider[]) => ProviderAvailability;

const defaultAvailability: AvailabilityCheck = (requested) =>
  installedAvailability(requested, (ort as unknown as { listSupportedBackends?: () => BackendInfo[] }).listSupportedBackends);

/**
 * onnxruntime's own logger writes raw coloured lines to stderr (e.g. when a provider library cannot be loaded),
 * outside the JSON log. Everything it would report below fatal also reaches the daemon as an exception or a
 * result, which the daemon logs as JSON; so it is silenced (must happen before the first session is created).
 */
function quietOnnxruntime(): void {
  if (ort.env.logLevel !== 'fatal') ort.env.logLevel = 'fatal';
}

export class InferenceEngine {
  readonly manifest: ModelManifest;
  readonly provider: Provider;
  readonly maxBatch: number;
  private readonly session: ort.InferenceSession;
  private readonly batcher: FrameBatcher;

  private constructor(manifest: ModelManifest, session: ort.InferenceSession, provider: Provider, maxBatch: number) {
    this.manifest = manifest;
    this.session = session;
    this.provider = provider;
    this.maxBatch = maxBatch;
    this.batcher = new FrameBatcher(manifest.height, manifest.width, maxBatch);
  }

  get frameBytes(): number {
    return this.manifest.height * this.manifest.width * 3;
  }

  /** Loads, verifies, picks a provider and warms up. Throws ModelError for anything that makes the model unusable. */
  static async load(
    opts: InferenceOptions,
    log: Logger,
    factory: SessionFactory = defaultFactory,
    availability: AvailabilityCheck = defaultAvailability,
  ): Promise<InferenceEngine> {
    quietOnnxruntime();
    const manifest = readManifest(opts.modelDir);
    await verifyModelFile(manifest);
    log.info({ model: manifest.name, version: manifest.version, sha256: manifest.sha256 }, 'model checksum verified');
    const avail = availability(opts.providers);
    for (const s of avail.skipped) log.info({ provider: s.provider }, `execution provider ${s.provider} skipped: ${s.reason}`);
    if (avail.usable.length === 0) {
      throw new ModelError(
        `${manifest.onnxPath}: none of the configured execution providers (${opts.providers.join(', ')}) is available: ${avail.skipped.map((s) => `${s.provider}: ${s.reason}`).join('; ')}`,
      );
    }
    const providers = avail.usable;
    const trt = tensorrtConfig(manifest, { ...opts, providers }, log);
    let session: ort.InferenceSession | null = null;
    let provider: Provider | null = null;
    const failures: string[] = avail.skipped.map((s) => `${s.provider}: ${s.reason}`);
    for (const attempt of providerAttempts(providers)) {
      if (attempt[0] === 'tensorrt' && trt === null) {
        // Already explained by the TensorRT notes above; the log still names what is tried next.
        log.warn({ provider: 'tensorrt' }, `execution provider tensorrt not used, falling back to ${attempt[1] ?? 'nothing'}`);
        failures.push('tensorrt: not usable (see TensorRT notes)');
        continue;
      }
      const entries: ExecutionProviderEntry[] = executionProviders(attempt, trt);
      try {
        session = await factory(manifest.onnxPath, {
          executionProviders: entries as ort.InferenceSession.ExecutionProviderConfig[],
          graphOptimizationLevel: 'all',
          logSeverityLevel: 4, // fatal only: see quietOnnxruntime()
        });
        provider = attempt[0];
        break;
      } catch (err) {
        const msg = (err as Error).message.split('\n')[0];
        failures.push(`${attempt[0]}: ${msg}`);
        const next = attempt[1];
        log.warn({ provider: attempt[0], err: msg }, next ? `execution provider ${attempt[0]} unavailable, falling back to ${next}` : `execution provider ${attempt[0]} unavailable`);
      }
    }
    if (!session || !provider) {
      throw new ModelError(`${manifest.onnxPath}: no execution provider could load the model (${failures.join('; ')})`);
    }
    log.info({ provider, tried: providers, configured: opts.providers }, `inference provider in use: ${provider}`);
    const fixedBatch = checkContract(manifest, session);
    let maxBatch = opts.maxBatch;
    if (fixedBatch !== null && fixedBatch < maxBatch) {
      log.warn({ fixedBatch, maxBatch }, `model input has a fixed batch of ${fixedBatch}: model.maxBatch lowered to ${fixedBatch}`);
      maxBatch = fixedBatch;
    }
    const engine = new InferenceEngine(manifest, session, provider, maxBatch);
    const t0 = performance.now();
    let warm: BatchOutput;
    try {
      warm = await engine.run([Buffer.alloc(engine.frameBytes, 127)]);
    } catch (err) {
      throw new ModelError(`${manifest.onnxPath}: warm-up run failed (${(err as Error).message.split('\n')[0]})`);
    }
    log.info({ ms: Math.round(performance.now() - t0), rawScore: warm.scores[0] }, 'model warm-up done');
    return engine;
  }

  /** Runs up to maxBatch frames (each exactly H*W*3 RGB bytes) as one batch. */
  async run(frames: Buffer[]): Promise<BatchOutput> {
    const n = frames.length;
    const { height: h, width: w } = this.manifest;
    const input = new ort.Tensor('uint8', this.batcher.pack(frames), [n, h, w, 3]);
    const t0 = performance.now();
    const out = await this.session.run({ [this.manifest.inputName]: input });
    const runMs = performance.now() - t0;
    const map = out[this.manifest.outputs.anomalyMap];
    const score = out[this.manifest.outputs.score];
    if (!map || !score) throw new ModelError(`${this.manifest.onnxPath}: run returned no ${!map ? 'anomaly_map' : 'score'} output`);
    const md = map.dims;
    if (md.length !== 4 || md[0] !== n || md[1] !== 1 || md[2] !== h || md[3] !== w) {
      throw new ModelError(`${this.manifest.onnxPath}: anomaly_map has shape [${md.join(',')}], expected [${n},1,${h},${w}]`);
    }
    if (score.dims.length !== 1 || score.dims[0] !== n) {
      throw new ModelError(`${this.manifest.onnxPath}: score has shape [${score.dims.join(',')}], expected [${n}]`);
    }
    return { scores: score.data as Float32Array, maps: map.data as Float32Array, runMs };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** Throws ModelError when the session contradicts model.json; returns the input's fixed batch size, if any. */
function checkContract(m: ModelManifest, s: ort.InferenceSession): number | null {
  const where = m.onnxPath;
  if (!s.inputNames.includes(m.inputName)) {
    throw new ModelError(`${where}: wrong input contract: no input "${m.inputName}" (inputs: ${s.inputNames.join(', ')})`);
  }
  for (const o of [m.outputs.anomalyMap, m.outputs.score]) {
    if (!s.outputNames.includes(o)) throw new ModelError(`${where}: wrong output contract: no output "${o}" (outputs: ${s.outputNames.join(', ')})`);
  }
  const meta = s.inputMetadata?.find((x) => x.name === m.inputName);
  if (meta && meta.isTensor) {
    if (meta.type !== 'uint8') throw new ModelError(`${where}: wrong input contract: "${m.inputName}" is ${meta.type}, expected uint8`);
    const shape = meta.shape;
    const fixed = (d: number | string | undefined, want: number): boolean => typeof d !== 'number' || d === want;
    if (shape.length !== 4 || !fixed(shape[1], m.height) || !fixed(shape[2], m.width) || !fixed(shape[3], 3)) {
      throw new ModelError(
        `${where}: wrong input contract: "${m.inputName}" has shape [${shape.join(',')}], expected [N,${m.height},${m.width},3] (model.json input size)`,
      );
    }
    if (typeof shape[0] === 'number' && shape[0] > 0) return shape[0];
  }
  return null;
}
