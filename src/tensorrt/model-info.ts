// The few model.json fields the TensorRT engine depends on (docs/model-format.md), read and checked on their own
// so the engine build CLI does not need the daemon's configuration or model loader.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sha256File } from '../infer/manifest';

export interface EngineModelInfo {
  dir: string;
  onnxPath: string;
  sha256: string;
  inputName: string;
  height: number;
  width: number;
  name: string;
  version: string;
}

export class ModelCheckError extends Error {}

export function readEngineModelInfo(modelDir: string): EngineModelInfo {
  // Absolute, unresolved (no realpath): the same path string the daemon hands onnxruntime (/models/current/...).
  modelDir = path.resolve(modelDir);
  const manifestPath = path.join(modelDir, 'model.json');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ModelCheckError(`${manifestPath}: ${err.code === 'ENOENT' ? 'file not found' : err.message}`);
  }
  const m = raw as {
    format?: unknown; name?: unknown; version?: unknown;
    input?: { name?: unknown; height?: unknown; width?: unknown };
    onnx?: { file?: unknown; sha256?: unknown };
  };
  const problems: string[] = [];
  if (m.format !== 'etstpm-model/1') problems.push(`format: expected "etstpm-model/1", got ${JSON.stringify(m.format)}`);
  const file = m.onnx?.file;
  if (typeof file !== 'string' || file.length === 0 || file.includes('/') || file.includes('\\')) {
    problems.push(`onnx.file: expected a file name inside the model folder, got ${JSON.stringify(file)}`);
  }
  const sha = m.onnx?.sha256;
  if (typeof sha !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha)) problems.push(`onnx.sha256: expected 64 hex characters, got ${JSON.stringify(sha)}`);
  const inputName = m.input?.name;
  if (typeof inputName !== 'string' || inputName.length === 0) problems.push(`input.name: expected a string, got ${JSON.stringify(inputName)}`);
  for (const k of ['height', 'width'] as const) {
    const v = m.input?.[k];
    if (!Number.isInteger(v) || (v as number) < 1) problems.push(`input.${k}: expected a positive integer, got ${JSON.stringify(v)}`);
  }
  if (problems.length > 0) throw new ModelCheckError(`${manifestPath}: ${problems.join('; ')}`);
  return {
    dir: modelDir,
    onnxPath: path.join(modelDir, file as string),
    sha256: (sha as string).toLowerCase(),
    inputName: inputName as string,
    height: m.input!.height as number,
    width: m.input!.width as number,
    name: typeof m.name === 'string' ? m.name : '',
    version: typeof m.version === 'string' ? m.version : '',
  };
}

/** Throws ModelCheckError when model.onnx is missing or its sha256 differs from model.json. */
export async function verifyModelFile(info: EngineModelInfo): Promise<void> {
  let actual: string;
  try {
    actual = await sha256File(info.onnxPath);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ModelCheckError(`${info.onnxPath}: ${err.code === 'ENOENT' ? 'file not found' : err.message}`);
  }
  if (actual !== info.sha256) {
    throw new ModelCheckError(`${info.onnxPath}: sha256 ${actual} does not match model.json onnx.sha256 ${info.sha256}`);
  }
}
