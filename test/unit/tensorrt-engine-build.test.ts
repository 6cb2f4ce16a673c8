// The engine build CLI on a machine without TensorRT (this one, CI): every way it can stop must say why and exit
// with its documented code. The TensorRT build itself needs a Jetson (docs/deploy-jetson.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseEngineBuildArgs, UsageError } from '../../src/tensorrt/engine-build';

const repo = path.resolve(__dirname, '../../..');
const cli = path.join(repo, 'dist/src/tensorrt/engine-build.js');

function run(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    timeout: 60_000,
  });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

function makeModelDir(onnxBytes: Buffer, shaOverride?: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trt-model-'));
  fs.writeFileSync(path.join(dir, 'model.onnx'), onnxBytes);
  const sha = shaOverride ?? createHash('sha256').update(onnxBytes).digest('hex');
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({
    format: 'etstpm-model/1', name: 'test', version: 'v1',
    input: { name: 'frames', layout: 'NHWC', dtype: 'uint8', color: 'RGB', height: 64, width: 48 },
    outputs: { anomaly_map: 'anomaly_map', score: 'score' },
    onnx: { file: 'model.onnx', sha256: sha, opset: 17 },
    threshold: { raw: 0.5 },
    normalization: { method: 'minmax', threshold: 0.5, min: 0, max: 1 },
  }));
  return dir;
}

function fakeTensorRtRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'trt-root-'));
  fs.mkdirSync(path.join(root, 'usr/lib/aarch64-linux-gnu'), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr/lib/aarch64-linux-gnu/libnvinfer.so.10.3.0'), '');
  fs.mkdirSync(path.join(root, 'proc/device-tree'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc/device-tree/compatible'), 'nvidia,tegra234\0');
  return root;
}

test('engine build: argument precedence flags > env > config file > defaults, and usage errors', () => {
  const cfgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trt-cfg-'));
  try {
    const cfg = path.join(cfgDir, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify({ model: { dir: '/m/cfg', maxBatch: 2, tensorrt: { cacheDir: '/c/cfg', fp16: false } } }));
    assert.deepEqual(parseEngineBuildArgs([], {}), {
      modelDir: 'models/demo', cacheDir: '/var/cache/etstpm/trt', fp16: true, maxBatch: 4, deviceId: 0,
      check: false, force: false, retryFailed: false, prune: null, json: false,
    });
    const fromCfg = parseEngineBuildArgs(['--config', cfg], {});
    assert.equal(fromCfg.modelDir, '/m/cfg');
    assert.equal(fromCfg.cacheDir, '/c/cfg');
    assert.equal(fromCfg.fp16, false);
    assert.equal(fromCfg.maxBatch, 2);
    const fromEnv = parseEngineBuildArgs(['--config', cfg], { ETSTPM_MODEL_DIR: '/m/env', ETSTPM_TRT_CACHE_DIR: '/c/env' });
    assert.equal(fromEnv.modelDir, '/m/env');
    assert.equal(fromEnv.cacheDir, '/c/env');
    const fromFlags = parseEngineBuildArgs(['--config', cfg, '--model-dir', '/m/flag', '--fp16', '--max-batch', '8', '--prune', '1'], { ETSTPM_MODEL_DIR: '/m/env' });
    assert.equal(fromFlags.modelDir, '/m/flag');
    assert.equal(fromFlags.fp16, true);
    assert.equal(fromFlags.maxBatch, 8);
    assert.equal(fromFlags.prune, 1);

    assert.throws(() => parseEngineBuildArgs(['--max-batch', '0'], {}), (e: Error) => e instanceof UsageError && /--max-batch/.test(e.message));
    assert.throws(() => parseEngineBuildArgs(['--fp16', '--no-fp16'], {}), UsageError);
    assert.throws(() => parseEngineBuildArgs(['--bogus'], {}), UsageError);
    fs.writeFileSync(cfg, JSON.stringify({ model: { tensorrt: { fp16: 'yes' } } }));
    assert.throws(() => parseEngineBuildArgs(['--config', cfg], {}), /model\.tensorrt\.fp16/);
    assert.throws(() => parseEngineBuildArgs(['--config', path.join(cfgDir, 'absent.json')], {}), /config: .*absent\.json/);
  } finally {
    fs.rmSync(cfgDir, { recursive: true, force: true });
  }
});

test('engine build CLI: usage error exits 2', () => {
  const r = run(['--max-batch', 'many']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--max-batch: expected an integer/);
});

test('engine build CLI: a bad model folder exits 3 naming the file and the problem', () => {
  const absent = run(['--model-dir', path.join(os.tmpdir(), 'no-such-model-dir'), '--cache-dir', os.tmpdir()]);
  assert.equal(absent.code, 3);
  assert.match(absent.stderr, /no-such-model-dir\/model\.json: cannot read model manifest \(file not found\)/);

  const dir = makeModelDir(Buffer.from('not really onnx'), 'f'.repeat(64));
  try {
    const r = run(['--model-dir', dir, '--cache-dir', os.tmpdir()]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /model\.onnx: sha256 [0-9a-f]{64} does not match model\.json onnx\.sha256 f{64}/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('engine build CLI: no TensorRT on the machine exits 4 and builds nothing', () => {
  const dir = makeModelDir(Buffer.from('model bytes'));
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'trt-noroot-'));
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'trt-cache-'));
  try {
    const r = run(['--model-dir', dir, '--cache-dir', cache, '--json'], { ETSTPM_TRT_PROBE_ROOT: empty });
    assert.equal(r.code, 4);
    assert.match(r.stderr, /TensorRT unavailable: no TensorRT library \(libnvinfer\.so\.<version>\) found.*the daemon will use the next provider/);
    assert.equal(JSON.parse(r.stdout).exitCode, 4);
    assert.deepEqual(fs.readdirSync(cache), []);
  } finally {
    for (const d of [dir, empty, cache]) fs.rmSync(d, { recursive: true, force: true });
  }
});

test('engine build CLI: TensorRT libraries present but the onnxruntime-node binding cannot load TensorRT exits 4', () => {
  // The installed onnxruntime-node is the npm build: its TensorRT provider fails to load here (x64: provider
  // libraries not installed; arm64: CPU-only binding). The real binding is called; nothing is faked but the probe.
  const dir = makeModelDir(Buffer.from('model bytes'));
  const root = fakeTensorRtRoot();
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'trt-cache-'));
  try {
    const check = run(['--model-dir', dir, '--cache-dir', cache, '--check'], { ETSTPM_TRT_PROBE_ROOT: root });
    assert.equal(check.code, 1);
    assert.match(check.stderr, /not ready: [0-9a-f]{12}-trt10\.3\.0-sm87-fp16-b4-64x48-[0-9a-f]{12} \(missing\)/);

    const r = run(['--model-dir', dir, '--cache-dir', cache], { ETSTPM_TRT_PROBE_ROOT: root });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /TensorRT unavailable in this onnxruntime-node build: .*(Failed to load shared library|is unsupported: 'tensorrt')/);
    // No half-built engine directory and no lock are left behind.
    assert.deepEqual(fs.readdirSync(path.join(cache, 'engines')), []);

    // A build that failed before is not retried on every start (minutes each on a Jetson) unless asked to.
    const engineDir = JSON.parse(run(['--model-dir', dir, '--cache-dir', cache, '--check', '--json'], { ETSTPM_TRT_PROBE_ROOT: root }).stdout).engineDir;
    fs.mkdirSync(engineDir, { recursive: true });
    fs.writeFileSync(path.join(engineDir, 'FAILED.json'), JSON.stringify({ format: 'etstpm-trt-failed/1', keyId: 'k', failedAt: '2026-11-28T00:00:00Z', reason: 'warm-up run failed: out of memory' }));
    const again = run(['--model-dir', dir, '--cache-dir', cache], { ETSTPM_TRT_PROBE_ROOT: root });
    assert.equal(again.code, 5);
    assert.match(again.stderr, /last build of .* failed \(2026-11-28T00:00:00Z: warm-up run failed: out of memory\); not retrying automatically.*--retry-failed/);
    const checked = run(['--model-dir', dir, '--cache-dir', cache, '--check'], { ETSTPM_TRT_PROBE_ROOT: root });
    assert.equal(checked.code, 1);
    assert.match(checked.stderr, /build failed at 2026-11-28T00:00:00Z: warm-up run failed: out of memory/);
    const forced = run(['--model-dir', dir, '--cache-dir', cache, '--retry-failed'], { ETSTPM_TRT_PROBE_ROOT: root });
    assert.equal(forced.code, 4, forced.stderr); // retried: reaches the binding, which has no TensorRT here
    assert.ok(!fs.existsSync(engineDir), 'a forced retry starts from a clean folder');
  } finally {
    for (const d of [dir, root, cache]) fs.rmSync(d, { recursive: true, force: true });
  }
});
