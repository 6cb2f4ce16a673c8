// `engine build`: builds the TensorRT engine for a model folder ahead of time (first boot, after an image or model
// update), so that a production start finds it in the cache and never builds inside the watchdog window.
//
//   node dist/src/tensorrt/engine-build.js --model-dir DIR --cache-dir DIR [--config FILE] [--fp16|--no-fp16]
//        [--max-batch N] [--device-id N] [--check] [--force] [--retry-failed] [--prune N] [--json]
//
// Exit codes: 0 engine ready (built now or already there; with --check: ready), 1 --check: not ready,
// 2 usage or configuration error, 3 model folder invalid (missing file, sha256 mismatch), 4 TensorRT unavailable
// on this machine or in this onnxruntime build, 5 the build ran but produced no usable engine (recorded in
// FAILED.json; not retried without --retry-failed or --force, so a failing build does not delay every restart).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ModelError, readManifest, verifyModelFile } from '../infer/manifest';
import {
  clearEngineDir,
  listEngineFiles,
  pruneEngineDirs,
  readFailedMarker,
  writeFailedMarker,
  writeReadyMarker,
  type ReadyMarker,
} from './engine-cache';
import { probePlatform, type PlatformFacts } from './platform';
import { isProviderUnavailableError, onnxruntimeNodeVersion, resolveTensorRt } from './provider-plan';
import { executionProviders } from './provider-options';

export const EXIT = { ok: 0, notReady: 1, usage: 2, model: 3, unavailable: 4, buildFailed: 5 } as const;

export interface EngineBuildOptions {
  modelDir: string;
  cacheDir: string;
  fp16: boolean;
  maxBatch: number;
  deviceId: number;
  check: boolean;
  force: boolean;
  /** Retry a key whose last build failed (FAILED.json), but keep an engine that is ready (update scripts). */
  retryFailed: boolean;
  prune: number | null;
  json: boolean;
}

export class UsageError extends Error {}

const DEFAULTS = { modelDir: 'models/demo', cacheDir: '/var/cache/etstpm/trt', fp16: true, maxBatch: 4 };

const USAGE = `usage: engine-build --model-dir DIR --cache-dir DIR [--config FILE] [--fp16|--no-fp16] [--max-batch N]
                    [--device-id N] [--check] [--force] [--retry-failed] [--prune N] [--json]`;

/** Reads the four keys the engine depends on from the daemon's JSON config file (same names as the daemon). */
function readConfigFile(file: string): Partial<Pick<EngineBuildOptions, 'modelDir' | 'cacheDir' | 'fp16' | 'maxBatch'>> {
  let cfg: { model?: { dir?: unknown; maxBatch?: unknown; tensorrt?: { cacheDir?: unknown; fp16?: unknown } } };
  try {
    cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`config: ${file}: ${(e as Error).message}`);
  }
  const out: Partial<Pick<EngineBuildOptions, 'modelDir' | 'cacheDir' | 'fp16' | 'maxBatch'>> = {};
  const m = cfg.model ?? {};
  if (m.dir !== undefined) {
    if (typeof m.dir !== 'string') throw new UsageError(`config: model.dir: must be a string`);
    out.modelDir = m.dir;
  }
  if (m.maxBatch !== undefined) {
    if (!Number.isInteger(m.maxBatch) || (m.maxBatch as number) < 1) throw new UsageError(`config: model.maxBatch: must be a positive integer`);
    out.maxBatch = m.maxBatch as number;
  }
  if (m.tensorrt?.cacheDir !== undefined) {
    if (typeof m.tensorrt.cacheDir !== 'string') throw new UsageError(`config: model.tensorrt.cacheDir: must be a string`);
    out.cacheDir = m.tensorrt.cacheDir;
  }
  if (m.tensorrt?.fp16 !== undefined) {
    if (typeof m.tensorrt.fp16 !== 'boolean') throw new UsageError(`config: model.tensorrt.fp16: must be true or false`);
    out.fp16 = m.tensorrt.fp16;
  }
  return out;
}

function positiveInt(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`--${name}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** Precedence: flags > environment (same variables as the daemon) > --config file > daemon defaults. */
export function parseEngineBuildArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): EngineBuildOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        'model-dir': { type: 'string' },
        'cache-dir': { type: 'string' },
        config: { type: 'string' },
        fp16: { type: 'boolean' },
        'no-fp16': { type: 'boolean' },
        'max-batch': { type: 'string' },
        'device-id': { type: 'string' },
        check: { type: 'boolean' },
        force: { type: 'boolean' },
        'retry-failed': { type: 'boolean' },
        prune: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const v = parsed.values;
  if (v.help) throw new UsageError(USAGE);
  if (v.fp16 && v['no-fp16']) throw new UsageError('--fp16 and --no-fp16 given together');
  const fromFile = v.config !== undefined ? readConfigFile(v.config) : {};
  return {
    modelDir: v['model-dir'] ?? env.ETSTPM_MODEL_DIR ?? fromFile.modelDir ?? DEFAULTS.modelDir,
    cacheDir: v['cache-dir'] ?? env.ETSTPM_TRT_CACHE_DIR ?? fromFile.cacheDir ?? DEFAULTS.cacheDir,
    fp16: v.fp16 ? true : v['no-fp16'] ? false : fromFile.fp16 ?? DEFAULTS.fp16,
    maxBatch: positiveInt('max-batch', v['max-batch'], 1) ?? fromFile.maxBatch ?? DEFAULTS.maxBatch,
    deviceId: positiveInt('device-id', v['device-id'], 0) ?? 0,
    check: v.check ?? false,
    force: v.force ?? false,
    retryFailed: v['retry-failed'] ?? false,
    prune: positiveInt('prune', v.prune, 0) ?? null,
    json: v.json ?? false,
  };
}

export interface EngineBuildResult {
  exitCode: number;
  message: string;
  keyId?: string;
  engineDir?: string;
  buildMs?: number;
  engines?: { file: string; bytes: number }[];
}

export interface EngineBuildDeps {
  platform?: PlatformFacts;
  log?: (line: string) => void;
}

/** Exclusive lock beside the engine directory; a lock older than two hours is taken as left by a dead build. */
function acquireLock(lockPath: string): (() => void) | null {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      fs.writeSync(fd, `${os.hostname()} ${process.pid} ${new Date().toISOString()}\n`);
      fs.closeSync(fd);
      return () => fs.rmSync(lockPath, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const age = Date.now() - fs.statSync(lockPath).mtimeMs;
      if (age < 2 * 3600 * 1000) return null;
      fs.rmSync(lockPath, { force: true });
    }
  }
  return null;
}

export async function runEngineBuild(o: EngineBuildOptions, deps: EngineBuildDeps = {}): Promise<EngineBuildResult> {
  const log = deps.log ?? ((line: string) => process.stderr.write(`engine-build: ${line}\n`));

  let info;
  try {
    info = readManifest(o.modelDir);
    await verifyModelFile(info);
  } catch (e) {
    if (e instanceof ModelError) return { exitCode: EXIT.model, message: `model: ${e.message}` };
    throw e;
  }

  const platform = deps.platform ?? probePlatform();
  const setup = resolveTensorRt({
    model: info,
    cacheDir: o.cacheDir,
    fp16: o.fp16,
    maxBatch: o.maxBatch,
    deviceId: o.deviceId,
    onnxruntimeVersion: onnxruntimeNodeVersion(),
    platform,
  });
  if (!setup.usable) {
    return {
      exitCode: EXIT.unavailable,
      message: `TensorRT unavailable: ${setup.reason}. Nothing was built; the daemon will use the next provider in model.providers (cuda, then cpu).`,
    };
  }
  const base = { keyId: setup.key.id, engineDir: setup.engineDir };

  if (o.check) {
    return setup.state.state === 'ready'
      ? { exitCode: EXIT.ok, message: `ready: ${setup.key.id}`, ...base }
      : { exitCode: EXIT.notReady, message: `not ready: ${setup.key.id} (${setup.state.state === 'incomplete' ? setup.state.reason : 'missing'})`, ...base };
  }

  const prune = (): void => {
    if (o.prune === null) return;
    const removed = pruneEngineDirs(o.cacheDir, new Set([setup.key.id]), o.prune);
    if (removed.length > 0) log(`pruned old engines: ${removed.join(', ')}`);
  };

  if (setup.state.state === 'ready' && !o.force) {
    prune();
    return { exitCode: EXIT.ok, message: `already built: ${setup.key.id} in ${setup.engineDir}`, ...base, engines: setup.state.marker.engines };
  }

  const failed = readFailedMarker(setup.engineDir);
  if (failed !== null && !o.force && !o.retryFailed) {
    return {
      exitCode: EXIT.buildFailed,
      message: `the last build of ${setup.key.id} failed (${failed.failedAt}: ${failed.reason}); not retrying ` +
        'automatically (a failing build takes minutes on every restart): fix the cause, then run with --retry-failed',
      ...base,
    };
  }

  fs.mkdirSync(path.dirname(setup.engineDir), { recursive: true });
  const release = acquireLock(`${setup.engineDir}.lock`);
  if (release === null) {
    return { exitCode: EXIT.buildFailed, message: `another engine build holds ${setup.engineDir}.lock; try again when it has finished`, ...base };
  }
  try {
    clearEngineDir(setup.engineDir); // a half-written engine from an interrupted build must not be reused
    fs.mkdirSync(setup.engineDir, { recursive: true });
    fs.mkdirSync(setup.timingCacheDir, { recursive: true });
    log(`building ${setup.key.id} for ${info.onnxPath} (TensorRT ${platform.tensorrtVersion}, sm ${platform.computeCapability}, ` +
      `${o.fp16 ? 'fp16' : 'fp32'}, batch 1..${o.maxBatch}); this takes minutes on a Jetson`);

    // Loaded here, not at the top, so --check and the error paths above work without the native binding.
    const ort = await import('onnxruntime-node');
    const started = Date.now();
    let session;
    try {
      session = await ort.InferenceSession.create(info.onnxPath, {
        // Same list as the daemon's default order, so onnxruntime partitions the graph exactly as at run time.
        executionProviders: executionProviders(['tensorrt', 'cuda', 'cpu'], setup.provider),
        graphOptimizationLevel: 'all',
      });
    } catch (e) {
      clearEngineDir(setup.engineDir);
      const msg = (e as Error).message.split('\n')[0];
      if (isProviderUnavailableError(e)) {
        return {
          exitCode: EXIT.unavailable,
          message: `TensorRT unavailable in this onnxruntime-node build: ${msg}. Nothing was built; ` +
            'the daemon will use the next provider in model.providers (cuda, then cpu).',
          ...base,
        };
      }
      const message = `session creation failed: ${msg}`;
      writeFailedMarker(setup.engineDir, setup.key.id, message);
      return { exitCode: EXIT.buildFailed, message, ...base };
    }
    try {
      // Run the smallest and the largest batch of the profile once, so any lazily built engine exists on disk.
      for (const batch of new Set([1, o.maxBatch])) {
        const frames = new ort.Tensor('uint8', new Uint8Array(batch * info.height * info.width * 3), [batch, info.height, info.width, 3]);
        await session.run({ [info.inputName]: frames });
      }
    } catch (e) {
      clearEngineDir(setup.engineDir);
      const message = `warm-up run failed: ${(e as Error).message.split('\n')[0]}`;
      writeFailedMarker(setup.engineDir, setup.key.id, message);
      return { exitCode: EXIT.buildFailed, message, ...base };
    } finally {
      await session.release();
    }
    const buildMs = Date.now() - started;

    const engines = listEngineFiles(setup.engineDir);
    if (engines.length === 0) {
      const message = `TensorRT wrote no engine file to ${setup.engineDir}: the onnxruntime-node binding ignored the trt_* ` +
        'provider options (not the patched build from Dockerfile.l4t?) or TensorRT took no part of the graph';
      writeFailedMarker(setup.engineDir, setup.key.id, message);
      return { exitCode: EXIT.buildFailed, message, ...base, buildMs };
    }
    const marker: ReadyMarker = {
      format: 'etstpm-trt-ready/1',
      keyId: setup.key.id,
      digest: setup.key.digest,
      canonical: setup.key.canonical,
      builtAt: new Date().toISOString(),
      buildMs,
      engines,
      builtOn: [platform.deviceModel, platform.l4tRelease && `L4T ${platform.l4tRelease}`].filter(Boolean).join(', '),
    };
    writeReadyMarker(setup.engineDir, marker);
    prune();
    return { exitCode: EXIT.ok, message: `built ${setup.key.id} in ${(buildMs / 1000).toFixed(1)} s: ${engines.map((e) => e.file).join(', ')}`, ...base, buildMs, engines };
  } finally {
    release();
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  let opts: EngineBuildOptions;
  try {
    opts = parseEngineBuildArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`engine-build: ${e.message}\n`);
      return EXIT.usage;
    }
    throw e;
  }
  const result = await runEngineBuild(opts);
  process.stderr.write(`engine-build: ${result.message}\n`);
  if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
  return result.exitCode;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e: unknown) => {
      process.stderr.write(`engine-build: unexpected error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = EXIT.buildFailed;
    },
  );
}
