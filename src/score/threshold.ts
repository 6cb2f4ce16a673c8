/**
 * Per-camera decision threshold (docs/configuration.md, "Threshold override"): a raw-score override of the model's
 * calibrated threshold, from the config (cameras[].threshold) or at run time (console, MQTT command). The
 * normalisation is re-centred on the override, so 0.5 stays the decision point and score and verdict agree.
 */
import type { Normalization } from './normalize';

/** Where the active threshold comes from: model.json, cameras[].threshold, or a console/MQTT command. */
export type ThresholdSource = 'model' | 'config' | 'runtime';

export interface ActiveThreshold {
  /** The raw score at and above which a frame is NG. */
  raw: number;
  source: ThresholdSource;
  /** The model's calibrated threshold (model.json threshold.raw), for comparison. */
  model: number;
}

/** A refused threshold value: the message names the camera and the value. */
export class ThresholdError extends Error {
  override name = 'ThresholdError';
}

/** Checks a raw threshold from config, console or MQTT; `null` clears an override. */
export function parseThreshold(camera: string, v: unknown): number {
  const shown = typeof v === 'string' ? JSON.stringify(v) : String(v);
  if (typeof v !== 'number') {
    throw new ThresholdError(`camera ${camera}: threshold ${shown} is not a number (expected a raw score >= 0, as model.json threshold.raw)`);
  }
  if (!Number.isFinite(v)) throw new ThresholdError(`camera ${camera}: threshold ${shown} is not finite`);
  if (v < 0) throw new ThresholdError(`camera ${camera}: threshold ${shown} is negative (raw scores are >= 0)`);
  return v;
}

/** The model's normalisation with its centre moved to `raw` (min/max kept: the score scale does not change). */
export function withThreshold(n: Normalization, raw: number | null | undefined): Normalization {
  return raw === null || raw === undefined || raw === n.threshold ? n : { ...n, threshold: raw };
}
