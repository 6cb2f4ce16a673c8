/**
 * The daemon's loaded models: one onnxruntime session per distinct model folder, shared by every camera that names
 * it, closed when the last of them lets go (docs/configuration.md, "One model per camera").
 *
 * A model is identified by its folder (absolute path) and the sha256 of its model.json as it is on disk now, so a
 * folder whose content was replaced behind the same path (update-model.sh --camera switches a `current` link) is
 * a new model on the next SIGHUP, and a folder whose model.json changed only in its threshold is one too.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '../log';
import { ModelError } from './manifest';
import { InferenceEngine, InferenceOptions } from './session';

export type EngineLoader = (opts: InferenceOptions, log: Logger) => Promise<InferenceEngine>;

export interface LoadedModel {
  /** folder + '#' + first 16 hex of sha256(model.json). */
  readonly key: string;
  readonly dir: string;
  readonly engine: InferenceEngine;
  /** Cameras scoring with it now. */
  readonly cameras: Set<string>;
  readonly loadedAt: number;
  /** Wall time of load + checksum + warm-up (ms). */
  readonly loadMs: number;
}

/** What /healthz lists per model. */
export interface ModelInfo {
  name: string;
  version: string;
  method: string;
  sha256: string;
  dir: string;
  provider: string;
  input: { height: number; width: number };
  cameras: string[];
  loadMs: number;
}

/** The folder's identity as it is on disk now; throws ModelError naming model.json when it cannot be read. */
export function modelKey(dir: string): string {
  const abs = resolve(dir);
  const file = join(abs, 'model.json');
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelError(`${file}: cannot read model manifest (${code === 'ENOENT' ? 'file not found' : code ?? (err as Error).message})`);
  }
  return `${abs}#${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`;
}

export class ModelSet {
  private readonly loaded = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();

  constructor(
    private readonly opts: Omit<InferenceOptions, 'modelDir'>,
    private readonly log: Logger,
    private readonly loader: EngineLoader = (o, l) => InferenceEngine.load(o, l),
  ) {}

  /**
   * The model in `dir` for `camera`: the session already loaded for the same folder and content, else a new one.
   * Throws ModelError with the camera and the folder in front of the loader's message (which names the file).
   */
  async acquire(dir: string, camera: string): Promise<LoadedModel> {
    let m: LoadedModel;
    try {
      m = await this.get(dir);
    } catch (err) {
      if (err instanceof ModelError) throw new ModelError(`camera ${camera}: model folder ${resolve(dir)}: ${err.message}`);
      throw err;
    }
    m.cameras.add(camera);
    return m;
  }

  private async get(dir: string): Promise<LoadedModel> {
    const key = modelKey(dir);
    const have = this.loaded.get(key);
    if (have) return have;
    let p = this.loading.get(key);
    if (!p) {
      p = (async () => {
        const t0 = performance.now();
        const engine = await this.loader({ ...this.opts, modelDir: dir }, this.log.child({ modelDir: resolve(dir) }));
        const m: LoadedModel = { key, dir: resolve(dir), engine, cameras: new Set(), loadedAt: Date.now(), loadMs: Math.round(performance.now() - t0) };
        this.loaded.set(key, m);
        this.log.info({ model: engine.manifest.name, version: engine.manifest.version, dir: m.dir, loadMs: m.loadMs, models: this.loaded.size }, 'model loaded');
        return m;
      })().finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }

  /** The camera no longer uses `m`; the session is closed when no camera does. */
  async release(m: LoadedModel, camera: string): Promise<void> {
    m.cameras.delete(camera);
    if (m.cameras.size > 0 || this.loaded.get(m.key) !== m) return;
    this.loaded.delete(m.key);
    this.log.info({ model: m.engine.manifest.name, version: m.engine.manifest.version, dir: m.dir }, 'model unloaded (no camera uses it)');
    await m.engine.close().catch((err: Error) => this.log.warn({ err: err.message, dir: m.dir }, 'closing a model session failed'));
  }

  get size(): number {
    return this.loaded.size;
  }

  all(): LoadedModel[] {
    return [...this.loaded.values()];
  }

  info(): ModelInfo[] {
    return this.all().map((m) => {
      const f = m.engine.manifest;
      return {
        name: f.name,
        version: f.version,
        method: f.method,
        sha256: f.sha256,
        dir: m.dir,
        provider: m.engine.provider,
        input: { height: f.height, width: f.width },
        cameras: [...m.cameras].sort(),
        loadMs: m.loadMs,
      };
    });
  }

  async closeAll(): Promise<void> {
    const all = this.all();
    this.loaded.clear();
    await Promise.all(all.map((m) => m.engine.close().catch(() => undefined)));
  }
}
