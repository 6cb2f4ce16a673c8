/**
 * Reads and checks a model folder (docs/model-format.md, format etstpm-model/1): the one reader of model.json, used
 * by the daemon's session loader and the TensorRT engine build CLI alike. Node built-ins only, so the CLI needs
 * neither onnxruntime nor the daemon's configuration to use it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DriftReference } from '../score/drift';

export interface ModelManifest {
  dir: string;
  onnxPath: string;
  name: string;
  version: string;
  /** Detection method (docs/model-format.md): "membank", "stpm", ...; "stpm" for models exported before the key. */
  method: string;
  /** How threshold.raw was calibrated (threshold.method, e.g. "order-statistic"); null when model.json does not say. */
  thresholdMethod: string | null;
  /** The teacher fine-tune the model was trained with (training.finetune); null when model.json does not say. */
  finetune: string | null;
  inputName: string;
  height: number;
  width: number;
  outputs: { anomalyMap: string; score: string };
  sha256: string;
  threshold: number;
  /**
   * What the drift indicator compares recent OK frames with (docs/daemon.md, "Drift"): threshold.details.drift_reference
   * (a quantile of the good calibration scores, well below the threshold), else the threshold itself with the share
   * the calibration expects above it.
   */
  driftReference: DriftReference;
  normalization: { threshold: number; min: number; max: number };
}

/**
 * A model that cannot be used: main.ts and engine-build.ts exit with code 3 and print the message (it names the
 * file).
 */
export class ModelError extends Error {
  override name = 'ModelError';
}

function num(v: unknown, key: string, file: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelError(`${file}: ${key} must be a finite number`);
  return v;
}

function str(v: unknown, key: string, file: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new ModelError(`${file}: ${key} must be a non-empty string`);
  return v;
}

type Json = Record<string, unknown>;

/** A JSON object, or {} for anything else, so a missing or mistyped section reports the key it lacks. */
function obj(v: unknown): Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {};
}

/** `ENOENT` reads as "file not found"; other codes are shown as they are. */
function why(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'file not found' : code ?? (err as Error).message;
}

export function readManifest(dir: string): ModelManifest {
  // Absolute but not realpath'd: the path string the daemon hands onnxruntime (/models/current/...), which is also
  // what TensorRT's engine cache records.
  const abs = resolve(dir);
  const file = join(abs, 'model.json');
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ModelError(`${file}: cannot read model manifest (${why(err)})`);
  }
  let j: Json;
  try {
    j = obj(JSON.parse(raw));
  } catch (err) {
    throw new ModelError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (j.format !== 'etstpm-model/1') throw new ModelError(`${file}: format is ${JSON.stringify(j.format)}, expected "etstpm-model/1"`);
  const input = obj(j.input);
  if (input.layout !== 'NHWC' || input.dtype !== 'uint8' || input.color !== 'RGB') {
    throw new ModelError(`${file}: input must be NHWC uint8 RGB, got ${input.layout}/${input.dtype}/${input.color}`);
  }
  const height = num(input.height, 'input.height', file);
  const width = num(input.width, 'input.width', file);
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 8 || width < 8) {
    throw new ModelError(`${file}: input.height/input.width must be integers >= 8`);
  }
  const onnx = obj(j.onnx);
  const onnxFile = str(onnx.file, 'onnx.file', file);
  if (onnxFile.includes('/') || onnxFile.includes('\\')) throw new ModelError(`${file}: onnx.file must be a file name inside the model folder`);
  const sha = str(onnx.sha256, 'onnx.sha256', file).toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(sha)) throw new ModelError(`${file}: onnx.sha256 must be 64 hex characters`);
  const norm = obj(j.normalization);
  const normalization = {
    threshold: num(norm.threshold, 'normalization.threshold', file),
    min: num(norm.min, 'normalization.min', file),
    max: num(norm.max, 'normalization.max', file),
  };
  if (!(normalization.max > normalization.min)) throw new ModelError(`${file}: normalization.max must be greater than normalization.min`);
  const outputs = obj(j.outputs);
  const threshold = num(obj(j.threshold).raw ?? normalization.threshold, 'threshold.raw', file);
  return {
    dir: abs,
    onnxPath: join(abs, onnxFile),
    name: str(j.name, 'name', file),
    version: str(j.version, 'version', file),
    method: j.method === undefined ? 'stpm' : str(j.method, 'method', file),
    thresholdMethod: optionalStr(obj(j.threshold).method),
    finetune: optionalStr(obj(j.training).finetune),
    inputName: str(input.name ?? 'frames', 'input.name', file),
    height,
    width,
    outputs: {
      anomalyMap: str(outputs.anomaly_map ?? 'anomaly_map', 'outputs.anomaly_map', file),
      score: str(outputs.score ?? 'score', 'outputs.score', file),
    },
    sha256: sha,
    threshold,
    driftReference: driftReference(j.threshold, threshold),
    normalization,
  };
}

/** Descriptive keys: a string, else null (never an error: nothing depends on them). */
function optionalStr(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

const share = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1 ? v : null);

/** docs/model-format.md, threshold.details.drift_reference; models calibrated before it fall back to the threshold. */
function driftReference(threshold: unknown, raw: number): DriftReference {
  const ref = obj(obj(obj(threshold).details).drift_reference);
  if (typeof ref.raw === 'number' && Number.isFinite(ref.raw)) return { raw: ref.raw, expectedShare: share(ref.expected_share_ok) };
  return { raw, expectedShare: expectedShareAbove(threshold) };
}

/** docs/model-format.md, threshold.details / guarantee: what the calibration says about normal scores above its threshold. */
export function expectedShareAbove(threshold: unknown): number | null {
  const d = obj(obj(threshold).details);
  const frr = share(d.frr_target) ?? share(obj(obj(threshold).guarantee).frr_target);
  if (frr !== null) return frr;
  const q = share(d.quantile);
  if (q !== null) return 1 - q;
  const n = d.holdout_images;
  const fr = d.holdout_false_rejects;
  if (typeof n === 'number' && n > 0 && typeof fr === 'number') return share(fr / n);
  return null;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await new Promise<void>((res, rej) => {
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => res())
      .on('error', rej);
  });
  return hash.digest('hex');
}

/** Throws ModelError when model.onnx is missing or its sha256 differs from model.json. */
export async function verifyModelFile(m: ModelManifest): Promise<void> {
  let actual: string;
  try {
    actual = await sha256File(m.onnxPath);
  } catch (err) {
    throw new ModelError(`${m.onnxPath}: cannot read model (${why(err)})`);
  }
  if (actual !== m.sha256) {
    throw new ModelError(`${m.onnxPath}: sha256 ${actual} does not match model.json onnx.sha256 ${m.sha256} (corrupt or replaced file)`);
  }
}
