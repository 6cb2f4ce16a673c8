// Model folders for daemon tests: a small contract-compatible model (test/fixtures/make_test_model.py, built with
// the python `onnx` package) and broken variants of it (sha256 mismatch, unreadable graph, wrong input contract).
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, VENV_PYTHON } from './env';

export interface ModelManifest {
  name: string;
  version: string;
  input: { height: number; width: number };
  onnx: { file: string; sha256: string };
  threshold: { raw: number };
  normalization: { threshold: number; min: number; max: number };
  [k: string]: unknown;
}

export interface TestModelOptions {
  size?: number;             // input H = W, default 64
  calibrate?: string[];      // folders of normal images for threshold/min/max (else fixed values)
  inputDtype?: 'uint8' | 'float32';
  name?: string;
}

export function makeTestModel(dir: string, o: TestModelOptions = {}): { dir: string; manifest: ModelManifest } {
  const args = [join(FIXTURES, 'make_test_model.py'), '--out', dir, '--size', String(o.size ?? 64)];
  if (o.calibrate?.length) args.push('--calibrate', ...o.calibrate);
  if (o.inputDtype) args.push('--input-dtype', o.inputDtype);
  if (o.name) args.push('--name', o.name);
  execFileSync(VENV_PYTHON, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120000 });
  return { dir, manifest: readManifest(dir) };
}

export function readManifest(dir: string): ModelManifest {
  return JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as ModelManifest;
}

export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Copy of `src` whose decision threshold lies below every possible score: every frame is NG (rejects, snapshots). */
export function alwaysNgCopy(src: string, dst: string): { dir: string; manifest: ModelManifest } {
  cpSync(src, dst, { recursive: true });
  const f = join(dst, 'model.json');
  const m = readManifest(dst);
  m.threshold.raw = -1;
  m.normalization = { ...m.normalization, threshold: -1, min: -1, max: 1 };
  writeFileSync(f, JSON.stringify(m, null, 2));
  return { dir: dst, manifest: readManifest(dst) };
}

/** Copy of `src` whose model.onnx no longer matches the sha256 in model.json (one weight byte flipped). */
export function sha256MismatchCopy(src: string, dst: string): string {
  cpSync(src, dst, { recursive: true });
  const f = join(dst, 'model.onnx');
  const b = readFileSync(f);
  b[b.length - 8] ^= 0x5a;
  writeFileSync(f, b);
  return dst;
}

/** Copy of `src` whose model.onnx is not an ONNX graph at all, with model.json's sha256 updated to match it. */
export function corruptGraphCopy(src: string, dst: string): string {
  cpSync(src, dst, { recursive: true });
  const f = join(dst, 'model.onnx');
  writeFileSync(f, Buffer.concat([Buffer.from('this is not an onnx protobuf\n'), randomBytes(512)]));
  const m = readManifest(dst);
  m.onnx.sha256 = sha256File(f);
  writeFileSync(join(dst, 'model.json'), JSON.stringify(m, null, 2));
  return dst;
}
