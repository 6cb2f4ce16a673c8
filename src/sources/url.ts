/** What a camera URL points at. */
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface SyntheticParams {
  defectRate: number;
  fps: number;
  seed: number;
  size: number;
}

export type SourceKind =
  | { kind: 'rtsp'; url: string }
  | { kind: 'synthetic'; params: SyntheticParams }
  | { kind: 'file'; path: string }
  | { kind: 'dir'; path: string };

function numParam(q: URLSearchParams, key: string, fallback: number, min: number, max: number): number {
  const v = q.get(key);
  if (v === null) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`synthetic:// parameter ${key}=${v} must be a number in ${min}..${max}`);
  return n;
}

export function parseSynthetic(url: string): SyntheticParams {
  const q = new URLSearchParams(url.replace(/^synthetic:\/\/[^?]*\??/i, ''));
  for (const k of q.keys()) {
    if (!['defectRate', 'fps', 'seed', 'size'].includes(k)) throw new Error(`synthetic:// parameter ${k} is unknown (defectRate, fps, seed, size)`);
  }
  return {
    defectRate: numParam(q, 'defectRate', 0.1, 0, 1),
    fps: numParam(q, 'fps', 5, 0.1, 60),
    seed: Math.floor(numParam(q, 'seed', 1, 0, 2 ** 32 - 1)),
    size: Math.floor(numParam(q, 'size', 256, 32, 2048)),
  };
}

/** Throws with a message naming the problem when a synthetic:// URL has bad parameters. */
export function classifyUrl(url: string): SourceKind {
  if (/^rtsps?:\/\//i.test(url)) return { kind: 'rtsp', url };
  if (/^synthetic:\/\//i.test(url)) return { kind: 'synthetic', params: parseSynthetic(url) };
  const path = /^file:\/\//i.test(url) ? fileURLToPath(url) : url;
  // A path that does not exist (yet) is treated as a file: ffmpeg reports it and the camera retries.
  try {
    if (statSync(path).isDirectory()) return { kind: 'dir', path };
  } catch {
    /* missing: see above */
  }
  return { kind: 'file', path };
}
