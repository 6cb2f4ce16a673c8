// Layout and state of the TensorRT engine cache volume:
//   <cacheRoot>/engines/<key id>/      engine + profile files written by onnxruntime, READY.json written by us
//   <cacheRoot>/timing/trt<ver>-sm<cc>/ TensorRT timing cache (shared by models on one TensorRT + GPU)
// READY.json is written last (atomically), after an engine file was seen, so a build that was interrupted
// (power cut, watchdog, OOM) never looks finished.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EngineKey } from './cache-key';

export const READY_FILE = 'READY.json';
/** Written when a build for this key failed, so restarts do not retry a minutes-long failing build each time. */
export const FAILED_FILE = 'FAILED.json';

export interface FailedMarker {
  format: 'etstpm-trt-failed/1';
  keyId: string;
  failedAt: string;
  reason: string;
}

export interface ReadyMarker {
  format: 'etstpm-trt-ready/1';
  keyId: string;
  digest: string;
  canonical: string;
  builtAt: string;
  buildMs: number;
  engines: { file: string; bytes: number }[];
  /** Free text, e.g. device model and L4T release, for humans reading the volume. */
  builtOn?: string;
}

export type EngineState =
  | { state: 'ready'; marker: ReadyMarker }
  | { state: 'missing' }
  | { state: 'incomplete'; reason: string };

export function engineDir(cacheRoot: string, key: EngineKey): string {
  return path.join(cacheRoot, 'engines', key.id);
}

export function timingCacheDir(cacheRoot: string, tensorrtVersion: string, computeCapability: string): string {
  return path.join(cacheRoot, 'timing', `trt${tensorrtVersion}-sm${computeCapability.replace('.', '')}`);
}

/** Engine files onnxruntime's TensorRT provider wrote (named *.engine), sorted. */
export function listEngineFiles(dir: string): { file: string; bytes: number }[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.engine'))
    .sort()
    .map((file) => ({ file, bytes: fs.statSync(path.join(dir, file)).size }));
}

export function readFailedMarker(dir: string): FailedMarker | null {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, FAILED_FILE), 'utf8')) as FailedMarker;
    return m.format === 'etstpm-trt-failed/1' ? m : null;
  } catch {
    return null;
  }
}

export function writeFailedMarker(dir: string, keyId: string, reason: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const marker: FailedMarker = { format: 'etstpm-trt-failed/1', keyId, failedAt: new Date().toISOString(), reason };
  const tmp = path.join(dir, `.${FAILED_FILE}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(marker, null, 2) + '\n');
  fs.renameSync(tmp, path.join(dir, FAILED_FILE));
}

export function readEngineState(dir: string, key: EngineKey): EngineState {
  const failed = readFailedMarker(dir);
  if (failed !== null) return { state: 'incomplete', reason: `build failed at ${failed.failedAt}: ${failed.reason}` };
  const markerPath = path.join(dir, READY_FILE);
  let text: string;
  try {
    text = fs.readFileSync(markerPath, 'utf8');
  } catch {
    return listEngineFiles(dir).length > 0
      ? { state: 'incomplete', reason: `${markerPath} is missing (engine build interrupted?)` }
      : { state: 'missing' };
  }
  let marker: ReadyMarker;
  try {
    marker = JSON.parse(text) as ReadyMarker;
  } catch (e) {
    return { state: 'incomplete', reason: `${markerPath}: not JSON (${(e as Error).message})` };
  }
  if (marker.format !== 'etstpm-trt-ready/1') return { state: 'incomplete', reason: `${markerPath}: unknown format ${JSON.stringify(marker.format)}` };
  if (marker.digest !== key.digest) return { state: 'incomplete', reason: `${markerPath}: written for another key (${marker.keyId})` };
  if (!Array.isArray(marker.engines) || marker.engines.length === 0) return { state: 'incomplete', reason: `${markerPath}: lists no engine file` };
  for (const e of marker.engines) {
    const p = path.join(dir, e.file);
    let size: number;
    try {
      size = fs.statSync(p).size;
    } catch {
      return { state: 'incomplete', reason: `${p}: listed in ${READY_FILE} but missing` };
    }
    if (size !== e.bytes) return { state: 'incomplete', reason: `${p}: ${size} bytes, ${READY_FILE} recorded ${e.bytes}` };
  }
  return { state: 'ready', marker };
}

export function writeReadyMarker(dir: string, marker: ReadyMarker): void {
  const tmp = path.join(dir, `.${READY_FILE}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(marker, null, 2) + '\n');
  fs.renameSync(tmp, path.join(dir, READY_FILE));
}

/** Removes a half-built engine directory so the next build starts clean. */
export function clearEngineDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Deletes engine directories except `keep` and the `keepNewest` most recently built others (so a rollback to the
 * previous model or image still finds its engine). Returns the removed directory names.
 */
export function pruneEngineDirs(cacheRoot: string, keep: ReadonlySet<string>, keepNewest: number): string[] {
  const root = path.join(cacheRoot, 'engines');
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  const others = names
    // Only engine directories; never one whose build holds a lock right now (another key being built).
    .filter((n) => !keep.has(n) && !n.endsWith('.lock') && !fs.existsSync(path.join(root, `${n}.lock`)))
    .filter((n) => fs.statSync(path.join(root, n)).isDirectory())
    .map((n) => ({ n, mtime: fs.statSync(path.join(root, n)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  const removed: string[] = [];
  for (const { n } of others.slice(Math.max(0, keepNewest))) {
    fs.rmSync(path.join(root, n), { recursive: true, force: true });
    removed.push(n);
  }
  return removed;
}
