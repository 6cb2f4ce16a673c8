/** Score normalization of docs/model-format.md: threshold maps to 0.5, verdict "ng" iff normalized >= 0.5. */
export interface Normalization {
  threshold: number;
  min: number;
  max: number;
}

export type Verdict = 'ok' | 'ng';

export function normalize(raw: number, n: Normalization): number {
  const v = (raw - n.threshold) / (n.max - n.min) + 0.5;
  if (Number.isNaN(v)) return 1; // a NaN score is not a good part: fail safe
  return Math.min(1, Math.max(0, v));
}

export function verdict(normalized: number): Verdict {
  return normalized >= 0.5 ? 'ng' : 'ok';
}

/** Normalizes a whole anomaly map into 0..255 (for heat maps): byte >= 128 exactly where normalized >= 0.5. */
export function normalizeMapToBytes(map: Float32Array, n: Normalization, out?: Uint8Array): Uint8Array {
  const res = out ?? new Uint8Array(map.length);
  const scale = 1 / (n.max - n.min);
  const offset = 0.5 - n.threshold * scale;
  // Per-pixel on the map only (H*W floats, once per snapshot, not per frame).
  for (let i = 0; i < map.length; i++) {
    const v = map[i] * scale + offset;
    res[i] = v <= 0 ? 0 : v >= 1 ? 255 : Math.min(255, Math.floor(v * 256));
  }
  return res;
}
