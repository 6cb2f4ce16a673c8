/**
 * What a SIGHUP changes (docs/daemon.md, "Lifecycle", SIGHUP), decided without touching a process: the daemon (src/daemon.ts)
 * carries the plan out. Two steps, because which models load is only known after trying: planReload() from the
 * cameras now and the new camera list, then planModels() from the outcome of loading the models it asked for.
 */
import type { CameraConfig } from '../config/types';

/** A camera as it runs now. */
export interface RunningCamera {
  config: CameraConfig;
  /** The identity (folder and content, src/infer/models.ts modelKey) of the model scoring it; null = none. */
  modelKey: string | null;
}

export interface ReloadPlan {
  /** In the old list only: stopped. */
  removed: string[];
  /** In the new list only: started. */
  added: string[];
  /** Kept with another decoder setting (URL, ROI, fps, ...): restarted. */
  changed: string[];
  /** Kept, only cameras[].threshold differs: applied in place. */
  thresholdOnly: string[];
  /** Kept or added cameras that keep the model they have. */
  keepModel: string[];
  /** Kept or added cameras whose model folder must be (re)loaded: another folder, new content, or none yet. */
  loadModel: { id: string; dir: string }[];
}

/** The model a camera's config names: its own folder, else model.dir. */
export function modelDirOf(cfg: CameraConfig, defaultDir: string): string {
  return cfg.model ?? defaultDir;
}

/** The same decoder: everything but the model and the threshold, which are applied without a restart. */
export function sameDecoder(a: CameraConfig, b: CameraConfig): boolean {
  return JSON.stringify({ ...a, model: null, threshold: null }) === JSON.stringify({ ...b, model: null, threshold: null });
}

/**
 * keyOf: the identity of what a model folder holds now, null when it cannot be read (loading it then reports why).
 */
export function planReload(
  current: ReadonlyMap<string, RunningCamera>,
  next: readonly CameraConfig[],
  defaultModelDir: string,
  keyOf: (dir: string) => string | null,
): ReloadPlan {
  const byId = new Map(next.map((c) => [c.id, c]));
  const p: ReloadPlan = { removed: [], added: [], changed: [], thresholdOnly: [], keepModel: [], loadModel: [] };
  for (const [id, cam] of current) {
    const n = byId.get(id);
    if (!n) p.removed.push(id);
    else if (!sameDecoder(n, cam.config)) p.changed.push(id);
    else if (n.threshold !== cam.config.threshold && modelDirOf(n, defaultModelDir) === modelDirOf(cam.config, defaultModelDir)) p.thresholdOnly.push(id);
  }
  for (const c of next) if (!current.has(c.id)) p.added.push(c.id);
  for (const n of next) {
    const cur = current.get(n.id)?.modelKey ?? null;
    const dir = modelDirOf(n, defaultModelDir);
    if (cur !== null && keyOf(dir) === cur) p.keepModel.push(n.id);
    else p.loadModel.push({ id: n.id, dir });
  }
  return p;
}

/** How loading one camera's model went: its input size when it loaded, null when it failed. */
export interface ModelOutcome {
  id: string;
  loaded: { width: number; height: number } | null;
  /** The input size of the model the camera has now; null = none (an unscored camera, or a new one). */
  current: { width: number; height: number } | null;
  /** The camera runs now (kept, not added). */
  running: boolean;
}

export interface ModelPlan {
  /** Cameras now scored by another model. */
  swapped: string[];
  /** Swapped without a decoder restart (same input size, decoder unchanged). */
  inPlace: string[];
  /** Cameras whose new model failed to load: they keep the one they had (or, new cameras, none). */
  modelFailed: string[];
  /** Cameras stopped and started again: changed, added, another input size, or a model now (or still) missing. */
  restart: string[];
}

export function planModels(plan: ReloadPlan, outcomes: readonly ModelOutcome[]): ModelPlan {
  const restart = new Set([...plan.changed, ...plan.added]);
  const m: ModelPlan = { swapped: [], inPlace: [], modelFailed: [], restart: [] };
  for (const o of outcomes) {
    if (o.loaded && o.current) m.swapped.push(o.id);
    else if (o.loaded && o.running) restart.add(o.id); // had none (UnscoredCamera): start it now
    if (!o.loaded) {
      m.modelFailed.push(o.id);
      if (!o.current && o.running) restart.add(o.id); // refresh the reason it shows
    }
  }
  for (const id of m.swapped) {
    const o = outcomes.find((x) => x.id === id) as ModelOutcome;
    const loaded = o.loaded as { width: number; height: number };
    const cur = o.current as { width: number; height: number };
    const same = loaded.width === cur.width && loaded.height === cur.height;
    if (same && !restart.has(id)) m.inPlace.push(id);
    else restart.add(id); // another input size: the decoder must scale to it
  }
  m.restart = [...restart];
  return m;
}
