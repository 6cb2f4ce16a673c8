import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { probePlatform, parseNvTegraRelease, computeCapabilityFromCompatible, compareVersions } from '../../src/tensorrt/platform';
import { engineCacheKey } from '../../src/tensorrt/cache-key';
import { engineDir, pruneEngineDirs, readEngineState, timingCacheDir, writeFailedMarker, writeReadyMarker, type ReadyMarker } from '../../src/tensorrt/engine-cache';

function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A fake Jetson root: the files the probe reads, with the contents L4T r36 has. */
function fakeJetsonRoot(): string {
  const root = tmp('trt-root-');
  const lib = path.join(root, 'usr/lib/aarch64-linux-gnu');
  fs.mkdirSync(lib, { recursive: true });
  for (const f of ['libnvinfer.so', 'libnvinfer.so.10', 'libnvinfer.so.10.3.0', 'libnvinfer.so.8.6.2', 'libnvinfer_plugin.so.10.3.0']) {
    fs.writeFileSync(path.join(lib, f), '');
  }
  fs.mkdirSync(path.join(root, 'proc/device-tree'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc/device-tree/compatible'), 'nvidia,p3737-0000+p3701-0005\0nvidia,p3701-0005\0nvidia,tegra234\0');
  fs.writeFileSync(path.join(root, 'proc/device-tree/model'), 'NVIDIA Jetson AGX Orin Developer Kit\0');
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/nv_tegra_release'), '# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024\n');
  return root;
}

test('platform probe reads TensorRT version, compute capability and L4T release from files', () => {
  const root = fakeJetsonRoot();
  try {
    const f = probePlatform({ root, env: {} });
    assert.equal(f.tensorrtVersion, '10.3.0'); // highest full version, not the 8.6.2 left over or the plugin library
    assert.equal(f.tensorrtLibrary, path.join(root, 'usr/lib/aarch64-linux-gnu/libnvinfer.so.10.3.0'));
    assert.equal(f.computeCapability, '8.7');
    assert.equal(f.deviceModel, 'NVIDIA Jetson AGX Orin Developer Kit');
    assert.equal(f.l4tRelease, '36.4.0');
    // An override for a discrete GPU (no device tree) wins; a malformed one is ignored.
    assert.equal(probePlatform({ root, env: { ETSTPM_GPU_COMPUTE_CAPABILITY: '8.9' } }).computeCapability, '8.9');
    assert.equal(probePlatform({ root, env: { ETSTPM_GPU_COMPUTE_CAPABILITY: 'sm89' } }).computeCapability, '8.7');
    // The environment variable selects the probed tree (used by the CLI tests).
    assert.equal(probePlatform({ env: { ETSTPM_TRT_PROBE_ROOT: root } }).tensorrtVersion, '10.3.0');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  const empty = tmp('trt-empty-');
  try {
    assert.deepEqual(probePlatform({ root: empty, env: {} }), {
      tensorrtVersion: null, tensorrtLibrary: null, computeCapability: null, deviceModel: null, l4tRelease: null,
    });
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
  assert.equal(parseNvTegraRelease('# R35 (release), REVISION: 5.0, GCID: 1'), '35.5.0');
  assert.equal(parseNvTegraRelease('garbage'), null);
  assert.equal(computeCapabilityFromCompatible('nvidia,p3509-0000+p3668-0001\0nvidia,tegra194\0'), '7.2');
  assert.equal(computeCapabilityFromCompatible('raspberrypi,4-model-b\0brcm,bcm2711\0'), null);
  assert.ok(compareVersions('10.3.0', '8.6.2') > 0 && compareVersions('10.10.0', '10.9.1') > 0);
});

const key = engineCacheKey({
  modelSha256: 'd'.repeat(64), tensorrtVersion: '10.3.0', onnxruntimeVersion: '1.30.0', computeCapability: '8.7',
  fp16: true, height: 256, width: 256, maxBatch: 4,
});

function marker(engines: { file: string; bytes: number }[], k = key): ReadyMarker {
  return { format: 'etstpm-trt-ready/1', keyId: k.id, digest: k.digest, canonical: k.canonical, builtAt: '2026-11-28T00:00:00Z', buildMs: 1, engines };
}

test('engine cache state: missing, interrupted, ready, and damaged after the fact', () => {
  const root = tmp('trt-cache-');
  try {
    const dir = engineDir(root, key);
    assert.equal(dir, path.join(root, 'engines', key.id));
    assert.equal(timingCacheDir(root, '10.3.0', '8.7'), path.join(root, 'timing', 'trt10.3.0-sm87'));
    assert.deepEqual(readEngineState(dir, key), { state: 'missing' });

    fs.mkdirSync(dir, { recursive: true });
    const engine = 'TensorrtExecutionProvider_TRTKernel_graph_main_123_0_0_sm87.engine';
    fs.writeFileSync(path.join(dir, engine), Buffer.alloc(1000));
    const interrupted = readEngineState(dir, key);
    assert.equal(interrupted.state, 'incomplete');
    assert.match((interrupted as { reason: string }).reason, /READY\.json is missing/);

    writeReadyMarker(dir, marker([{ file: engine, bytes: 1000 }]));
    assert.deepEqual(fs.readdirSync(dir).sort(), ['READY.json', engine].sort()); // no temp file left behind
    assert.equal(readEngineState(dir, key).state, 'ready');

    // A marker for another key (e.g. copied directory) is not trusted.
    const other = engineCacheKey({ modelSha256: 'e'.repeat(64), tensorrtVersion: '10.3.0', onnxruntimeVersion: '1.30.0', computeCapability: '8.7', fp16: true, height: 256, width: 256, maxBatch: 4 });
    assert.match((readEngineState(dir, other) as { reason: string }).reason, /written for another key/);

    // Truncated engine (disk full, partial copy): not ready.
    fs.truncateSync(path.join(dir, engine), 10);
    assert.match((readEngineState(dir, key) as { reason: string }).reason, /10 bytes, READY\.json recorded 1000/);
    fs.rmSync(path.join(dir, engine));
    assert.match((readEngineState(dir, key) as { reason: string }).reason, /listed in READY\.json but missing/);

    fs.writeFileSync(path.join(dir, 'READY.json'), '{not json');
    assert.match((readEngineState(dir, key) as { reason: string }).reason, /not JSON/);

    // A failed build is remembered (restarts must not retry a minutes-long failing build) and says why.
    writeFailedMarker(dir, key.id, 'session creation failed: boom');
    assert.match((readEngineState(dir, key) as { reason: string }).reason, /^build failed at \d{4}-.*: session creation failed: boom$/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('pruning keeps the current engine and the newest others (for rollback)', () => {
  const root = tmp('trt-prune-');
  try {
    const names = ['old1', 'old2', 'prev', 'current'];
    names.forEach((n, i) => {
      const d = path.join(root, 'engines', n);
      fs.mkdirSync(d, { recursive: true });
      const t = new Date(Date.UTC(2026, 0, 1 + i));
      fs.utimesSync(d, t, t);
    });
    // 'current' is kept by name, 'prev' as the newest other one; the rest goes.
    assert.deepEqual(pruneEngineDirs(root, new Set(['current']), 1).sort(), ['old1', 'old2']);
    assert.deepEqual(fs.readdirSync(path.join(root, 'engines')).sort(), ['current', 'prev']);
    // A directory whose build is running (lock file beside it) and the lock itself are never pruned.
    fs.writeFileSync(path.join(root, 'engines', 'current.lock'), 'host 1 now\n');
    assert.deepEqual(pruneEngineDirs(root, new Set(['prev']), 0), []);
    fs.rmSync(path.join(root, 'engines', 'current.lock'));
    // A named directory is kept even when it is the oldest.
    assert.deepEqual(pruneEngineDirs(root, new Set(['prev']), 0), ['current']);
    assert.deepEqual(pruneEngineDirs(path.join(root, 'absent'), new Set(), 0), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
